//! The device backend's KV cache: slots of a whole context each, preallocated per layer in
//! groups, so that a pass writes its new keys and values in place (no growth by concatenation,
//! no zero-size tensors) and attention finds every sequence of a group in one tensor by its slot.
//!
//! A group of slots holds, per layer, keys and values side by side as (slots * n_positions, 2c):
//! slot `s`'s position `p` is row `s * n_positions + p`, its keys in the first c columns and its
//! values in the next c, heads side by side, exactly as `c_attn` writes them in its last 2c
//! columns: a pass's new rows go in with one copy. Groups are made as sequences need them, each twice the size of the one before
//! (up to `MAX_GROUP_SLOTS`), and are never moved or grown: a pass that holds a group's tensors
//! on one thread is never invalidated by another thread taking a slot. A slot is a whole context,
//! as vLLM's blocks are not: simple, and what GPT-2's 1,024 positions afford.

use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::{DType, Device, Tensor};

use crate::error::Result;

/// The most slots in one group: a later group of GPT-2 XL in bf16 holds 32 x 315 MB.
const MAX_GROUP_SLOTS: usize = 32;

/// A model's slots.
pub struct KvSlots {
    n_layer: usize,
    n_positions: usize,
    width: usize,
    dtype: DType,
    device: Device,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    groups: Vec<Arc<SlotGroup>>,
    /// Slots not taken, as (group, slot in the group).
    free: Vec<(usize, usize)>,
}

/// Keys and values of a group of slots: per layer, (slots * n_positions, 2c).
pub struct SlotGroup {
    pub layers: Vec<Tensor>,
}

/// One sequence's slot, given back when dropped.
pub struct KvSlot {
    slots: Arc<KvSlots>,
    group: Arc<SlotGroup>,
    /// (group, slot in the group).
    at: (usize, usize),
}

impl KvSlots {
    /// Slots for `n_layer` layers of `n_positions` positions of `width` columns in `dtype`.
    pub fn new(n_layer: usize, n_positions: usize, width: usize, dtype: DType, device: &Device) -> Self {
        let state = Mutex::new(State::default());
        KvSlots { n_layer, n_positions, width, dtype, device: device.clone(), state }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a list and a free list, each left whole by every operation on it.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A free slot, from a new group when none is free.
    pub fn take(self: &Arc<Self>) -> Result<KvSlot> {
        let mut state = self.state();
        if state.free.is_empty() {
            let index = state.groups.len();
            let size = (1 << index.min(8)).min(MAX_GROUP_SLOTS);
            let rows = size * self.n_positions;
            // Zeros, not uninitialised memory: attention reads a few rows past a sequence's
            // last (masked, but a NaN there would still poison its weighted sum).
            let layer = || Tensor::zeros((rows, 2 * self.width), self.dtype, &self.device);
            let layers = (0..self.n_layer).map(|_| layer()).collect::<candle_core::Result<_>>()?;
            state.groups.push(Arc::new(SlotGroup { layers }));
            state.free.extend((0..size).rev().map(|slot| (index, slot)));
        }
        let at = state.free.pop().expect("a group was just added");
        Ok(KvSlot { slots: Arc::clone(self), group: Arc::clone(&state.groups[at.0]), at })
    }
}

impl KvSlot {
    pub fn belongs_to(&self, slots: &Arc<KvSlots>) -> bool {
        Arc::ptr_eq(&self.slots, slots)
    }

    pub fn group(&self) -> &Arc<SlotGroup> {
        &self.group
    }

    /// Which group the slot is in: sequences of one group attend in one call.
    pub fn group_index(&self) -> usize {
        self.at.0
    }

    /// The slot's position 0 in its group's tensors.
    pub fn first_row(&self) -> usize {
        self.at.1 * self.slots.n_positions
    }

    /// Memory one slot holds: every layer's keys and values of a whole context.
    pub fn bytes(&self) -> usize {
        let slots = &self.slots;
        2 * slots.n_layer * slots.n_positions * slots.width * slots.dtype.size_in_bytes()
    }

    /// A new slot holding a copy of this one's first `len` positions.
    pub fn copy(&self, len: usize) -> Result<KvSlot> {
        let copy = self.slots.take()?;
        if len > 0 {
            for (from, to) in self.group.layers.iter().zip(&copy.group.layers) {
                // A copy of its own: `slice_set` refuses a source that shares the target's storage.
                let rows = from.narrow(0, self.first_row(), len)?.copy()?;
                to.slice_set(&rows, 0, copy.first_row())?;
            }
        }
        Ok(copy)
    }
}

impl Drop for KvSlot {
    fn drop(&mut self) {
        self.slots.state().free.push(self.at);
    }
}
