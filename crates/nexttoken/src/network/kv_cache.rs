//! A sequence's keys and values of the positions seen so far. One type for both backends, made
//! empty by whoever runs a sequence: the CPU backend keeps them in host buffers of its own, the
//! device backend in a slot of the model's preallocated KV slots (`kv_slots`), taken at the
//! sequence's first pass and given back when the cache is dropped.

use std::sync::Arc;

use candle_core::Tensor;

use super::kv_slots::{KvSlot, KvSlots};
use crate::error::{Error, Result};
use crate::ops::write_heads;

/// Positions the CPU backend's buffers grow by: they are allocated in blocks of this many
/// positions and written in place, so a new token copies only its own keys and values.
const CACHE_BLOCK: usize = 256;

/// Keys and values of the positions seen so far: the first `len` positions of its store.
#[derive(Default)]
pub struct KvCache {
    store: Store,
    len: usize,
}

#[derive(Default)]
enum Store {
    /// No pass has run yet: either backend takes it.
    #[default]
    Empty,
    /// The CPU backend's: per layer, keys and values (1, nh, capacity, hs).
    Host(Vec<(Tensor, Tensor)>),
    /// The device backend's.
    Slot(KvSlot),
}

impl KvCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of positions already in the cache.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets every position from `len` on (their slots are overwritten by later appends).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Counts `t` positions written by a pass.
    pub(super) fn advance(&mut self, t: usize) {
        self.len += t;
    }

    /// An independent copy of the positions held: appends to one never show in the other (the
    /// cache is written in place, so a plain clone would share its storage).
    pub fn deep_copy(&self) -> Result<KvCache> {
        let store = match &self.store {
            Store::Empty => Store::Empty,
            Store::Host(layers) => {
                let copy = |t: &Tensor| -> candle_core::Result<Tensor> {
                    let held = t.narrow(2, 0, self.len)?;
                    if held.is_contiguous() {
                        held.copy()
                    } else {
                        held.contiguous()
                    }
                };
                Store::Host(layers.iter().map(|(k, v)| Ok((copy(k)?, copy(v)?))).collect::<Result<_>>()?)
            }
            Store::Slot(slot) => Store::Slot(slot.copy(self.len)?),
        };
        Ok(KvCache { store, len: self.len })
    }

    /// The memory a `deep_copy` holds: the positions held on the CPU backend, a whole slot on
    /// the device backend (what a store of copies counts against its budget).
    pub fn copy_bytes(&self) -> usize {
        match &self.store {
            Store::Empty => 0,
            Store::Host(layers) => {
                let per_position =
                    |t: &Tensor| t.elem_count() / t.dim(2).unwrap_or(1).max(1) * t.dtype().size_in_bytes();
                layers.iter().map(|(k, v)| self.len * (per_position(k) + per_position(v))).sum()
            }
            Store::Slot(slot) => slot.bytes(),
        }
    }

    /// The device backend's slot of this cache in `slots`, taken from them at its first pass.
    pub(super) fn slot(&mut self, slots: &Arc<KvSlots>) -> Result<&KvSlot> {
        if let Store::Empty = self.store {
            self.store = Store::Slot(slots.take()?);
        }
        match &self.store {
            Store::Slot(slot) if slot.belongs_to(slots) => Ok(slot),
            _ => Err(Error::InvalidArg(
                "this KV cache was filled by another model: use one cache per model".into(),
            )),
        }
    }

    /// The CPU backend's: writes the keys and values of this pass's `t` new positions for
    /// `layer` (each (t, c), heads side by side) after the cached ones, and returns all of them
    /// so far: (1, nh, T, hs).
    pub(super) fn append(
        &mut self,
        layer: usize,
        (k, v): (&Tensor, &Tensor),
        n_head: usize,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let (t, c) = k.dims2()?;
        let needed = self.len + t;
        if let Store::Empty = self.store {
            self.store = Store::Host(Vec::new());
        }
        let Store::Host(layers) = &mut self.store else {
            candle_core::bail!("this KV cache was filled by another model: use one cache per model")
        };
        // Each layer's buffers are made at its first append, whatever order layers come in.
        if layers.len() <= layer {
            let empty = Tensor::zeros((1, n_head, 0, c / n_head), k.dtype(), k.device())?;
            layers.resize(layer + 1, (empty.clone(), empty));
        }
        let (cache_k, cache_v) = &mut layers[layer];
        if cache_k.dim(2)? < needed {
            let (_, nh, capacity, hs) = cache_k.dims4()?;
            let grow = needed.next_multiple_of(CACHE_BLOCK) - capacity;
            let spare = Tensor::zeros((1, nh, grow, hs), k.dtype(), k.device())?;
            *cache_k = Tensor::cat(&[&*cache_k, &spare], 2)?;
            *cache_v = Tensor::cat(&[&*cache_v, &spare], 2)?;
        }
        write_heads(cache_k, k, self.len)?;
        write_heads(cache_v, v, self.len)?;
        Ok((cache_k.narrow(2, 0, needed)?, cache_v.narrow(2, 0, needed)?))
    }
}
