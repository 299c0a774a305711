//! The device backend's pass: what it needs to know of its batch (the new tokens, their
//! positions, where each one's keys and values go, which sequences attend together), uploaded to
//! the device as one small buffer before the first layer, then per layer the KV write and the
//! attention of every new token over its sequence's slot (`kv_slots`).
//!
//! Sequences decoding one token each attend in one call per slot group, however many they are:
//! their keys are gathered by slot and length, and positions past a sequence's length are masked.
//! A sequence reading several tokens (a prompt) attends alone, causally, over its slot's rows.
//! Everything is candle's operations, so the same code runs on CUDA, Metal and the CPU (where CI
//! tests it). Where `ops::fused_kernels` says so, the KV write and the decoding sequences'
//! attention are one fused CUDA kernel each (`ops::cuda`), reading the same indices.

use std::ops::Range;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use super::kv_slots::{KvSlot, KvSlots, SlotGroup};
use crate::config::Config;
use crate::error::Result;
use crate::ops::{cuda, fused_kernels};

/// What the device backend keeps beside the weights.
pub struct DeviceParts {
    pub slots: Arc<KvSlots>,
    /// It runs the fused CUDA kernels (`ops::fused_kernels`).
    fused: bool,
    /// 0..n_positions (u32): key positions, for the gathers and masks.
    key_positions: Tensor,
    /// -inf in the activations' dtype: a masked score.
    neg_inf: Tensor,
}

impl DeviceParts {
    pub fn new(config: &Config, dtype: DType, device: &Device) -> Result<Self> {
        let slots = KvSlots::new(config.n_layer, config.n_positions, config.n_embd, dtype, device);
        Ok(DeviceParts {
            slots: Arc::new(slots),
            fused: fused_kernels(device),
            key_positions: Tensor::arange(0u32, config.n_positions as u32, device)?,
            neg_inf: Tensor::new(f32::NEG_INFINITY, device)?.to_dtype(dtype)?,
        })
    }
}

/// One sequence of a pass: its new tokens after `past` positions in `slot`.
pub struct PassSequence<'a> {
    pub ids: &'a [u32],
    pub past: usize,
    pub slot: &'a KvSlot,
}

/// A pass over a batch, its indices on the device.
pub struct DevicePass<'p> {
    parts: &'p DeviceParts,
    /// (rows) u32: the new tokens, sequence after sequence.
    pub ids: Tensor,
    /// (rows) u32: their positions.
    pub positions: Tensor,
    /// (sequences) u32: each sequence's last new row.
    pub last_rows: Tensor,
    writes: Vec<GroupWrite>,
    pieces: Vec<Piece>,
    /// Where each row's attention is among the pieces' outputs stacked, unless in order.
    order: Option<Tensor>,
}

/// The new rows that go to one slot group.
struct GroupWrite {
    group: Arc<SlotGroup>,
    /// The fused write's indices: which rows of the pass (n), then the group's row each is
    /// written to (n).
    meta: Tensor,
    /// The same rows for candle's operations: None when all of the pass's, in order.
    rows: Option<Tensor>,
    /// (n, 1) u32: the group's row each is written to.
    targets: Tensor,
}

/// One attention call.
enum Piece {
    /// Sequences of one slot group with one new token each: queries `rows` (None: all, in
    /// order), whose slots start at `first_rows` (n, 1) and who are at `positions` (n, 1), the
    /// longest of them seeing `keys` keys; `meta` is the three side by side (3n, the rows
    /// always), the fused kernel's indices.
    Decode {
        group: Arc<SlotGroup>,
        meta: Tensor,
        rows: Option<Tensor>,
        first_rows: Tensor,
        positions: Tensor,
        keys: usize,
    },
    /// One sequence's `rows` of new tokens at `positions` (t, 1), over its slot from
    /// `first_row`, the last of them seeing `keys` keys.
    Prompt { group: Arc<SlotGroup>, rows: Range<usize>, first_row: usize, positions: Tensor, keys: usize },
}

/// The u32 values a pass uploads, each view named by its range.
#[derive(Default)]
struct Upload(Vec<u32>);

impl Upload {
    fn push(&mut self, values: impl IntoIterator<Item = u32>) -> Range<usize> {
        let start = self.0.len();
        self.0.extend(values);
        start..self.0.len()
    }
}

impl<'p> DevicePass<'p> {
    /// The pass over `sequences`, their new tokens stacked in order.
    pub fn new(parts: &'p DeviceParts, sequences: &[PassSequence], device: &Device) -> Result<Self> {
        let mut upload = Upload::default();
        let starts: Vec<usize> =
            sequences.iter().scan(0, |row, s| Some(std::mem::replace(row, *row + s.ids.len()))).collect();
        let rows = starts.last().zip(sequences.last()).map_or(0, |(start, s)| start + s.ids.len());
        let ids = upload.push(sequences.iter().flat_map(|s| s.ids.iter().copied()));
        let positions =
            upload.push(sequences.iter().flat_map(|s| (s.past..s.past + s.ids.len()).map(|p| p as u32)));
        let last_rows =
            upload.push(starts.iter().zip(sequences).map(|(row, s)| (row + s.ids.len() - 1) as u32));

        let groups = by_slot_group(sequences);
        let rows_of = |i: usize| starts[i]..starts[i] + sequences[i].ids.len();
        // (Each set of indices a fused kernel reads is pushed as consecutive ranges.)
        let mut writes = Vec::new();
        for members in &groups {
            let own_rows = upload.push(members.iter().flat_map(|&i| rows_of(i)).map(|r| r as u32));
            let targets = members.iter().flat_map(|&i| {
                let s = &sequences[i];
                (0..s.ids.len()).map(move |j| (s.slot.first_row() + s.past + j) as u32)
            });
            let targets = upload.push(targets);
            let all = groups.len() == 1;
            writes.push((sequences[members[0]].slot.group().clone(), own_rows, all, targets));
        }

        let mut pieces = Vec::new();
        let mut stacked: Vec<usize> = Vec::with_capacity(rows); // pass rows in the pieces' order
        for members in &groups {
            let decoding: Vec<usize> =
                members.iter().copied().filter(|&i| sequences[i].ids.len() == 1).collect();
            if decoding.is_empty() {
                continue;
            }
            let all = decoding.len() == sequences.len();
            let own_rows = upload.push(decoding.iter().map(|&i| starts[i] as u32));
            let first_rows = upload.push(decoding.iter().map(|&i| sequences[i].slot.first_row() as u32));
            let at = upload.push(decoding.iter().map(|&i| sequences[i].past as u32));
            let keys = decoding.iter().map(|&i| sequences[i].past + 1).max().unwrap_or(1);
            pieces.push((
                sequences[decoding[0]].slot.group().clone(),
                PieceRanges::Decode { own_rows, all, first_rows, at, keys },
            ));
            stacked.extend(decoding.iter().map(|&i| starts[i]));
        }
        for (i, s) in sequences.iter().enumerate().filter(|(_, s)| s.ids.len() > 1) {
            let at = upload.push((s.past..s.past + s.ids.len()).map(|p| p as u32));
            let keys = s.past + s.ids.len();
            pieces.push((
                s.slot.group().clone(),
                PieceRanges::Prompt { rows: rows_of(i), first_row: s.slot.first_row(), at, keys },
            ));
            stacked.extend(rows_of(i));
        }
        let order = inverse_unless_identity(&stacked).map(|order| upload.push(order));

        let values = Tensor::new(upload.0, device)?; // the pass's one upload
        let view = |range: &Range<usize>| values.narrow(0, range.start, range.len());
        let column = |range: &Range<usize>| view(range)?.unsqueeze(1);
        let writes = writes
            .into_iter()
            .map(|(group, rows, all, targets)| {
                Ok(GroupWrite {
                    group,
                    meta: view(&(rows.start..targets.end))?,
                    rows: if all { None } else { Some(view(&rows)?) },
                    targets: column(&targets)?,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        let pieces = pieces
            .into_iter()
            .map(|(group, ranges)| {
                Ok(match ranges {
                    PieceRanges::Decode { own_rows, all, first_rows, at, keys } => Piece::Decode {
                        group,
                        meta: view(&(own_rows.start..at.end))?,
                        rows: if all { None } else { Some(view(&own_rows)?) },
                        first_rows: column(&first_rows)?,
                        positions: column(&at)?,
                        keys,
                    },
                    PieceRanges::Prompt { rows, first_row, at, keys } => {
                        Piece::Prompt { group, rows, first_row, positions: column(&at)?, keys }
                    }
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(DevicePass {
            parts,
            ids: view(&ids)?,
            positions: view(&positions)?,
            last_rows: view(&last_rows)?,
            writes,
            pieces,
            order: order.as_ref().map(view).transpose()?,
        })
    }

    /// Writes the pass's new keys and values for `layer`, side by side ((rows, 2c): the last
    /// 2c columns of `c_attn`'s output), into their slots.
    pub fn write(&self, layer: usize, keys_values: &Tensor) -> candle_core::Result<()> {
        for write in &self.writes {
            if self.parts.fused {
                cuda::write_kv(&write.group.layers[layer], keys_values, &write.meta)?;
                continue;
            }
            // (candle's index_select reads contiguous tensors only.)
            let new = match &write.rows {
                None => keys_values.contiguous()?,
                Some(rows) => keys_values.contiguous()?.index_select(rows, 0)?,
            };
            let index = write.targets.broadcast_as(new.shape())?.contiguous()?;
            write.group.layers[layer].scatter_set(&index, &new, 0)?;
        }
        Ok(())
    }

    /// `softmax(scale * q k^T + mask) v` of every new row's query (q: (rows, c), heads side by
    /// side) over its sequence's keys and values of `layer`, written first: (rows, c).
    pub fn attend(&self, layer: usize, q: &Tensor, n_head: usize, scale: f64) -> candle_core::Result<Tensor> {
        let (_, c) = q.dims2()?;
        let hs = c / n_head;
        let heads =
            |t: &Tensor, n: usize, len: usize| t.reshape((n, len, n_head, hs))?.transpose(1, 2)?.contiguous();
        // Rows of a slot group as keys and values: their first and last c columns, (n, nh, len, hs).
        let keys_and_values =
            |rows: &Tensor, n: usize, len: usize| -> candle_core::Result<(Tensor, Tensor)> {
                Ok((heads(&rows.narrow(1, 0, c)?, n, len)?, heads(&rows.narrow(1, c, c)?, n, len)?))
            };
        let mut outputs = Vec::with_capacity(self.pieces.len());
        for piece in &self.pieces {
            // Queries (n, nh, t, hs), keys and values (n, nh, keys, hs), mask (n, 1, t, keys).
            let (q, (k, v), mask) = match piece {
                Piece::Decode { group, meta, keys, .. } if self.parts.fused && *keys <= cuda::MAX_KEYS => {
                    let shape = (n_head, *keys);
                    outputs.push(cuda::decode_attention(q, &group.layers[layer], meta, shape, scale)?);
                    continue;
                }
                Piece::Decode { group, rows, first_rows, positions, keys, .. } => {
                    let q = match rows {
                        None => q.clone(),
                        Some(rows) => q.contiguous()?.index_select(rows, 0)?,
                    };
                    let n = q.dim(0)?;
                    let key_positions = self.parts.key_positions.narrow(0, 0, *keys)?.unsqueeze(0)?;
                    // Past its length a sequence reads its own last row again: finite, and masked.
                    let index = first_rows.broadcast_add(&key_positions.broadcast_minimum(positions)?)?;
                    let rows = group.layers[layer].index_select(&index.flatten_all()?, 0)?;
                    let mask = key_positions.broadcast_gt(positions)?.reshape((n, 1, 1, *keys))?;
                    (heads(&q, n, 1)?, keys_and_values(&rows, n, *keys)?, mask)
                }
                Piece::Prompt { group, rows, first_row, positions, keys } => {
                    let t = rows.len();
                    let slot = group.layers[layer].narrow(0, *first_row, *keys)?;
                    let key_positions = self.parts.key_positions.narrow(0, 0, *keys)?.unsqueeze(0)?;
                    let mask = key_positions.broadcast_gt(positions)?.reshape((1, 1, t, *keys))?;
                    (heads(&q.narrow(0, rows.start, t)?, 1, t)?, keys_and_values(&slot, 1, *keys)?, mask)
                }
            };
            let (n, _, t, _) = q.dims4()?;
            let scores = (q.matmul(&k.t()?)? * scale)?;
            let shape = scores.shape();
            let scores =
                mask.broadcast_as(shape)?.where_cond(&self.parts.neg_inf.broadcast_as(shape)?, &scores)?;
            let weights = candle_nn::ops::softmax_last_dim(&scores)?;
            outputs.push(weights.matmul(&v)?.transpose(1, 2)?.reshape((n * t, c))?);
        }
        let stacked = match outputs.len() {
            1 => outputs.pop().expect("one output"),
            _ => Tensor::cat(&outputs, 0)?,
        };
        match &self.order {
            Some(order) => stacked.index_select(order, 0),
            None => Ok(stacked),
        }
    }
}

/// The indices of `sequences` by slot group, groups in order of first appearance.
fn by_slot_group(sequences: &[PassSequence]) -> Vec<Vec<usize>> {
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for (i, s) in sequences.iter().enumerate() {
        match groups.iter_mut().find(|(g, _)| *g == s.slot.group_index()) {
            Some((_, members)) => members.push(i),
            None => groups.push((s.slot.group_index(), vec![i])),
        }
    }
    groups.into_iter().map(|(_, members)| members).collect()
}

/// Where each row is in `stacked` (the rows in the order the attention calls give them), or
/// None when they are in order already.
fn inverse_unless_identity(stacked: &[usize]) -> Option<Vec<u32>> {
    if stacked.iter().enumerate().all(|(at, &row)| at == row) {
        return None;
    }
    let mut order = vec![0u32; stacked.len()];
    for (at, &row) in stacked.iter().enumerate() {
        order[row] = at as u32;
    }
    Some(order)
}

/// A piece's views before the upload exists.
enum PieceRanges {
    Decode { own_rows: Range<usize>, all: bool, first_rows: Range<usize>, at: Range<usize>, keys: usize },
    Prompt { rows: Range<usize>, first_row: usize, at: Range<usize>, keys: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `kv_write` of kernels.cu on the host: rows `meta[..n]` of `new` (rows `stride` apart) to
    /// rows `meta[n..]` of `layer` (`width` a row).
    fn kv_write_on_host(layer: &mut [f32], width: usize, new: &[f32], stride: usize, meta: &[u32]) {
        let n = meta.len() / 2;
        for i in 0..n {
            let (from, to) = (meta[i] as usize * stride, meta[n + i] as usize * width);
            layer[to..to + width].copy_from_slice(&new[from..from + width]);
        }
    }

    /// `decode_attention` of kernels.cu on the host: sequence i's query is row `meta[i]` of `q`
    /// (rows `stride` apart), its keys rows `meta[n + i]..=meta[n + i] + meta[2n + i]` of
    /// `layer` (2c a row: keys, then values). (n, c).
    fn decode_attention_on_host(
        q: &[f32],
        stride: usize,
        layer: &[f32],
        meta: &[u32],
        c: usize,
        n_head: usize,
    ) -> Vec<f32> {
        let (n, hs) = (meta.len() / 3, c / n_head);
        let scale = 1.0 / (hs as f32).sqrt();
        let mut out = vec![0f32; n * c];
        for i in 0..n {
            let (first, keys) = (meta[n + i] as usize, meta[2 * n + i] as usize + 1);
            for h in 0..n_head {
                let query = &q[meta[i] as usize * stride + h * hs..][..hs];
                let row = |j: usize| &layer[(first + j) * 2 * c..][..2 * c];
                let scores: Vec<f32> = (0..keys)
                    .map(|j| query.iter().zip(&row(j)[h * hs..]).map(|(a, b)| a * b).sum::<f32>() * scale)
                    .collect();
                let largest = scores.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                let weights: Vec<f32> = scores.iter().map(|s| (s - largest).exp()).collect();
                let sum: f32 = weights.iter().sum();
                for d in 0..hs {
                    let acc: f32 = (0..keys).map(|j| weights[j] * row(j)[c + h * hs + d]).sum();
                    out[i * c + h * hs + d] = acc / sum;
                }
            }
        }
        out
    }

    fn values(count: usize, seed: u32) -> Vec<f32> {
        (0..count)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 16) as f32 / 65536.0 - 0.5)
            .collect()
    }

    #[test]
    fn the_fused_kernels_indices_give_what_candle_s_operations_give() {
        let (n_positions, c, n_head) = (16, 8, 2);
        let device = Device::Cpu;
        let parts = DeviceParts {
            slots: Arc::new(KvSlots::new(1, n_positions, c, DType::F32, &device)),
            fused: false,
            key_positions: Tensor::arange(0u32, n_positions as u32, &device).unwrap(),
            neg_inf: Tensor::new(f32::NEG_INFINITY, &device).unwrap(),
        };
        // Three slots in two groups (of 1 and 2 slots), every row holding some finite value:
        // positions past a sequence's length must be masked, not zero.
        let slots: Vec<KvSlot> = (0..3).map(|_| parts.slots.take().unwrap()).collect();
        for slot in &slots {
            let layer = &slot.group().layers[0];
            let rows = layer.dim(0).unwrap();
            layer
                .slice_set(&Tensor::from_vec(values(rows * 2 * c, 7), (rows, 2 * c), &device).unwrap(), 0, 0)
                .unwrap();
        }
        // A decoding row after 3 positions, a prompt of 2, a decoding row after 5: attention in
        // three calls, rows out of order.
        let sequences = [
            PassSequence { ids: &[1], past: 3, slot: &slots[0] },
            PassSequence { ids: &[2, 3], past: 0, slot: &slots[1] },
            PassSequence { ids: &[4], past: 5, slot: &slots[2] },
        ];
        let pass = DevicePass::new(&parts, &sequences, &device).unwrap();
        assert!(pass.order.is_some() && pass.writes.len() == 2);
        let qkv = Tensor::from_vec(values(4 * 3 * c, 11), (4, 3 * c), &device).unwrap();
        let host = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let before: Vec<Vec<f32>> = pass.writes.iter().map(|w| host(&w.group.layers[0])).collect();
        pass.write(0, &qkv.narrow(1, c, 2 * c).unwrap()).unwrap();
        let y = host(
            &pass
                .attend(0, &qkv.narrow(1, 0, c).unwrap(), n_head, 1.0 / ((c / n_head) as f64).sqrt())
                .unwrap(),
        );
        let qkv = host(&qkv);
        for (write, mut layer) in pass.writes.iter().zip(before) {
            kv_write_on_host(&mut layer, 2 * c, &qkv[c..], 3 * c, &write.meta.to_vec1::<u32>().unwrap());
            assert_eq!(layer, host(&write.group.layers[0]), "the fused write's indices");
        }
        let mut decoded = 0;
        for piece in &pass.pieces {
            let Piece::Decode { group, meta, .. } = piece else { continue };
            let meta = meta.to_vec1::<u32>().unwrap();
            let fused = decode_attention_on_host(&qkv, 3 * c, &host(&group.layers[0]), &meta, c, n_head);
            for (i, &row) in meta[..meta.len() / 3].iter().enumerate() {
                let generic = &y[row as usize * c..][..c];
                let diff =
                    generic.iter().zip(&fused[i * c..][..c]).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(diff <= 1e-5, "row {row}: the fused attention's indices give {diff} off");
                decoded += 1;
            }
        }
        assert_eq!(decoded, 2, "both decoding rows checked");
    }
}
