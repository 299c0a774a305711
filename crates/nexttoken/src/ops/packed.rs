//! Weights repacked once, at load, into the layout the matrix kernel streams: panels of `PANEL`
//! output columns, each panel cut into blocks of `BLOCK` inputs, each block holding its inputs'
//! weights for the panel's columns in the matrix's dtype. The kernel reads every
//! weight in address order whatever the number of rows it multiplies.
//!
//! A block is `BLOCK` x `PANEL` values (input-major but for bf16 in pairs, the last panel and
//! block zero-padded):
//! - fp32, fp16: the values, 4 or 2 bytes each;
//! - bf16: the values, 2 bytes each, input by input too, except where AVX-512 BF16's dot product
//!   multiplies them (`Order::of`): then in pairs of inputs, for pair q and column j the 32-bit
//!   element (w[2q][j], w[2q + 1][j]) (low half first), the form `bf16_tile` reads;
//! - q8 (llama.cpp's Q8_0): the panel's 32 column scales as f16, then the values in the layout
//!   the integer dot products read (`q8_offset`): 8 groups of 4 inputs, each group 32 lanes of
//!   4 bytes, lane j holding inputs 4g..4g + 4 of column j as unsigned bytes (the int8 value with
//!   its sign bit flipped: value + 128). Each column's 32 values in a block are quantized
//!   together, exactly as one Q8_0 block of a row of llama.cpp's (out, in) weight;
//! - q4 (Q4_0): 32 f16 scales, then the values in q8's lanes, two to a byte (`q4_position`):
//!   4 groups of 4 inputs, each group 32 lanes of 4 bytes, lane j of group g holding inputs
//!   4g..4g + 4 of column j in its bytes' low nibbles and inputs 16 + 4g.. in their high nibbles
//!   (llama.cpp's pairing of inputs i and i + 16), as Q4_0 stores them: value + 8, 0 to 15. One
//!   AND of a loaded register gives one group's unsigned bytes, a shift and an AND the other's.
//!
//! A (in, out) Conv1D weight and the transposed token embeddings (the tied output head) pack the
//! same way; the embeddings are read back from the packed head (`column`), so the model keeps a
//! single copy of them. Each matrix has its own mapping (`PageBuffer`), freed to the system with it.

use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
use half::{bf16, f16};
use rayon::prelude::*;

use super::bf16_tile::PAIR;
use super::buffer::{PageBuffer, WeightBytes};
use super::simd::{self, Level};
use crate::dtype::WeightDtype;

/// Output columns per panel: two 512-bit registers of f32.
pub const PANEL: usize = 32;

/// Inputs per block: llama.cpp's block size for Q8_0 and Q4_0, so blocks of theirs and ours
/// hold the same 32 weights.
pub const BLOCK: usize = 32;

/// Values per block.
const BLOCK_VALUES: usize = BLOCK * PANEL;

/// Bytes of the scales that start a quantized block: one f16 per column. q8 scales stay f16 (not
/// widened to f32 at load) so that q8 weights stay 1.06 bytes each: decoding reads every weight
/// once per token and is bound by memory, and the kernels widen 32 scales per 1024 weights.
pub const SCALE_BYTES: usize = PANEL * 2;

/// Consecutive inputs of one column in a 32-bit lane of a q8 block: what `vpdpbusd` (AVX-512
/// VNNI) and `vpmaddubsw` + `vpmaddwd` (AVX2) sum into one 32-bit lane.
pub const Q8_LANE_INPUTS: usize = 4;

/// What q8 values are stored XOR'ed with: int8 + 128, the unsigned operand `vpdpbusd` wants (its
/// other operand, the activations, is signed). The AVX2 kernel flips it back. A lossless bit
/// flip, so llama.cpp's blocks are still moved bit for bit up to it, and never requantized.
pub const Q8_SIGN_FLIP: u8 = 0x80;

/// Where the q8 value of input `i` (< BLOCK) of column `j` is in a block's values: the one
/// place that decides the q8 layout (see the module documentation). It is the integer kernels'
/// operand as it is, so that products of any number of rows read the weights once, with no
/// re-laying per product; the f32 paths (no AVX2) decode it like any other layout.
pub const fn q8_offset(i: usize, j: usize) -> usize {
    (i / Q8_LANE_INPUTS * PANEL + j) * Q8_LANE_INPUTS + i % Q8_LANE_INPUTS
}

/// Inputs apart of the two q4 values that share a byte: input i (< 16) in the low nibble, i + 16
/// in the high one, as in llama.cpp's Q4_0 blocks, so that theirs are moved byte for byte.
pub const Q4_PAIR_DISTANCE: usize = BLOCK / 2;

/// Bits of one q4 value.
const NIBBLE_BITS: u32 = 4;

/// Where the q4 value of input `i` (< BLOCK) of column `j` is in a block's values: its byte and
/// the shift of its nibble. The one place that decides the q4 layout (see the module
/// documentation): q8's lanes of 4 inputs (`q8_offset`) for the first 16 inputs, and the last 16
/// in the same bytes' high nibbles, so that the integer kernels take the unsigned values of two
/// groups of lanes from one load with an AND and a shift, and nothing is re-laid per product.
pub const fn q4_position(i: usize, j: usize) -> (usize, u32) {
    (q8_offset(i % Q4_PAIR_DISTANCE, j), NIBBLE_BITS * (i / Q4_PAIR_DISTANCE) as u32)
}

/// Stored rows read and packed per task while loading: a few MB, so that tasks balance and the
/// buffers they read into stay small.
const LOAD_CHUNK_BYTES: usize = 4 << 20;

/// The version of the packed layouts: packed-cache files (`crate::packed_cache`) record it, and
/// a file of another version is packed again. Changing any layout this module describes must
/// bump it, or a file of the old layout would be read as the new one.
pub const LAYOUT_VERSION: u32 = 3; // 2: q4 values in q8's lanes of 4 inputs; 3: bf16 in pairs (`Order`)

/// `x.round() as i8` (C's `roundf`, halves away from zero, as llama.cpp's quantizers round;
/// saturating) in a form the compiler vectorises: `f32::round` is a call into libm per value,
/// which took a quarter of a q8 load. `x - trunc(x)` is exact for every float, so the result is
/// `roundf`'s wherever it fits an i32. The one rounding of Q8_0 values: weights here,
/// activations in `int8_tile`.
#[inline(always)]
pub fn round_half_away(x: f32) -> i8 {
    let x = x.clamp(i8::MIN.into(), i8::MAX.into()); // saturating, as `as i8` is (NaN stays NaN)
    let whole = x as i32; // towards zero (NaN gives 0)
    let fraction = x - whole as f32;
    (whole + i32::from(fraction >= 0.5) - i32::from(fraction <= -0.5)) as i8
}

// A pair of inputs never straddles two blocks, so a block in pairs holds whole pairs.
const _: () = assert!(BLOCK.is_multiple_of(PAIR));

/// How a block orders its values (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Input by input: input i's `PANEL` values, then input i + 1's.
    Inputs,
    /// bf16 in pairs of inputs: per pair, each column's two values side by side.
    Pairs,
}

impl Order {
    /// The order `dtype`'s blocks are packed in by this process: the one place that decides it.
    /// bf16 goes in pairs where its products use AVX-512 BF16's dot product (`simd::bf16_dot`,
    /// decided once per process), which multiplies pairs of consecutive inputs: packed so at
    /// load, every product reads the panels as they are instead of re-laying them per product;
    /// every other dtype, and bf16 on other CPUs (whose kernels widen input by input), go input
    /// by input.
    pub fn of(dtype: WeightDtype) -> Self {
        match dtype == WeightDtype::Bf16 && simd::bf16_dot() {
            true => Order::Pairs,
            false => Order::Inputs,
        }
    }
}

/// Index of input `i`, column `j` among a block's 16-bit values in pairs.
fn paired_index(i: usize, j: usize) -> usize {
    (i / PAIR * PANEL + j) * PAIR + i % PAIR
}

/// Bytes of one block in `dtype`.
pub fn block_bytes(dtype: WeightDtype) -> usize {
    match dtype {
        WeightDtype::F32 => BLOCK_VALUES * 4,
        WeightDtype::Bf16 | WeightDtype::F16 => BLOCK_VALUES * 2,
        WeightDtype::Q8_0 => SCALE_BYTES + BLOCK_VALUES,
        WeightDtype::Q4_0 => SCALE_BYTES + BLOCK_VALUES / 2,
    }
}

/// A (k, n) matrix in panels; see the module documentation.
pub struct PackedMatrix {
    data: WeightBytes,
    dtype: WeightDtype,
    /// `Order::of(dtype)` when packed; each reader of the bytes follows it.
    order: Order,
    k: usize,
    n: usize,
}

/// Where packing tasks write: disjoint blocks of one buffer (the callers' safety argument).
#[derive(Clone, Copy)]
struct SharedBytes(*mut u8);
// SAFETY: only a pointer; every task that uses it writes a range no other task touches.
unsafe impl Send for SharedBytes {}
// SAFETY: as above.
unsafe impl Sync for SharedBytes {}

impl PackedMatrix {
    /// Packs a (k, n) matrix in `dtype` from its stored form, read in chunks of stored rows by
    /// `read(rows, values)` (row-major f32, into `values`), several chunks at once. Stored as
    /// (k, n) (a Conv1D weight, `x @ w`) or, when `transposed`, as (n, k) (the tied head:
    /// `x @ wte^T`). Blocks go in `Order::of(dtype)`.
    pub fn pack<E: Send>(
        dtype: WeightDtype,
        k: usize,
        n: usize,
        transposed: bool,
        read: impl Fn(std::ops::Range<usize>, &mut Vec<f32>) -> Result<(), E> + Sync,
    ) -> Result<Self, PackError<E>> {
        Self::pack_in(dtype, Order::of(dtype), k, n, transposed, read)
    }

    /// `pack` with its blocks in `order` (`Order::Pairs` for bf16 only).
    fn pack_in<E: Send>(
        dtype: WeightDtype,
        order: Order,
        k: usize,
        n: usize,
        transposed: bool,
        read: impl Fn(std::ops::Range<usize>, &mut Vec<f32>) -> Result<(), E> + Sync,
    ) -> Result<Self, PackError<E>> {
        assert!(order == Order::Inputs || dtype == WeightDtype::Bf16, "only bf16 is packed in pairs");
        let blocks = k.div_ceil(BLOCK);
        let panels = n.div_ceil(PANEL);
        let mut data = PageBuffer::zeroed(panels * blocks * block_bytes(dtype)).map_err(PackError::Memory)?;
        let packed_len = data.bytes().len();
        let shared = SharedBytes(data.bytes_mut().as_mut_ptr());
        let (stored_rows, stored_cols) = if transposed { (n, k) } else { (k, n) };
        // Chunks are whole blocks of inputs (stored rows of a Conv1D weight) or whole panels of
        // columns (stored rows of the transposed head), so each task writes whole blocks alone.
        let row_bytes = stored_cols.max(1) * 4;
        let rows_per_chunk = (LOAD_CHUNK_BYTES / row_bytes / BLOCK).max(1) * BLOCK;
        let chunks = stored_rows.div_ceil(rows_per_chunk);
        let layout = Layout { dtype, k, n, blocks };
        (0..chunks).into_par_iter().try_for_each_init(
            || (Vec::new(), vec![0f32; BLOCK_VALUES]),
            |(values, block), chunk| {
                let out = shared; // the whole wrapper, not its pointer field alone
                let rows = chunk * rows_per_chunk..((chunk + 1) * rows_per_chunk).min(stored_rows);
                read(rows.clone(), values).map_err(PackError::Read)?;
                let (panels_here, blocks_here) = match transposed {
                    false => (0..panels, rows.start / BLOCK..rows.end.div_ceil(BLOCK)),
                    true => (rows.start / PANEL..rows.end.div_ceil(PANEL), 0..blocks),
                };
                for p in panels_here {
                    for b in blocks_here.clone() {
                        // Gathers the block's values (zero past the matrix's edge).
                        let (i0, j0) = (b * BLOCK, p * PANEL);
                        let (inputs, cols) = (BLOCK.min(k - i0), PANEL.min(n - j0));
                        if inputs < BLOCK || cols < PANEL {
                            block.fill(0.0);
                        }
                        for i in 0..inputs {
                            let row = &mut block[i * PANEL..i * PANEL + cols];
                            match transposed {
                                false => {
                                    row.copy_from_slice(&values[(i0 + i - rows.start) * n + j0..][..cols])
                                }
                                true => {
                                    for (j, v) in row.iter_mut().enumerate() {
                                        *v = values[(j0 + j - rows.start) * k + i0 + i];
                                    }
                                }
                            }
                        }
                        let at = layout.block_offset(p, b);
                        let size = block_bytes(dtype);
                        assert!(at + size <= packed_len);
                        // SAFETY: (p, b) is written by this task alone (chunks cover disjoint
                        // blocks, see above), within the buffer (asserted), which outlives the tasks.
                        let dst = unsafe { std::slice::from_raw_parts_mut(out.0.add(at), size) };
                        encode(dtype, order, block, dst).map_err(PackError::OutOfRange)?;
                    }
                }
                Ok(())
            },
        )?;
        Ok(PackedMatrix { data: WeightBytes::Own(data), dtype, order, k, n })
    }

    /// Packs a (k, n) matrix of q8 or q4 from llama.cpp's Q8_0 or Q4_0 blocks of its (n, k)
    /// rows (a ggml weight, or the token embeddings), bit for bit: block b of row j is our block
    /// (panel j / PANEL, b)'s column j % PANEL, its scale and quants moved, nothing requantized.
    /// `read(rows, bytes)` fills `bytes` with stored rows `rows`, each `k / BLOCK` blocks of 34
    /// (Q8_0) or 18 (Q4_0) bytes. `k` must be a whole number of blocks (ggml's own rule).
    pub fn from_ggml_blocks<E: Send>(
        dtype: WeightDtype,
        k: usize,
        n: usize,
        read: impl Fn(std::ops::Range<usize>, &mut Vec<u8>) -> Result<(), E> + Sync,
    ) -> Result<Self, PackError<E>> {
        assert!(matches!(dtype, WeightDtype::Q8_0 | WeightDtype::Q4_0) && k.is_multiple_of(BLOCK));
        // ggml's block: an f16 scale, then 32 int8 (Q8_0) or 16 bytes of nibble pairs (Q4_0).
        let quant_bytes = if dtype == WeightDtype::Q8_0 { BLOCK } else { BLOCK / 2 };
        let ggml_block = 2 + quant_bytes;
        let blocks = k / BLOCK;
        let panels = n.div_ceil(PANEL);
        let mut data = PageBuffer::zeroed(panels * blocks * block_bytes(dtype)).map_err(PackError::Memory)?;
        let packed_len = data.bytes().len();
        let shared = SharedBytes(data.bytes_mut().as_mut_ptr());
        let row_bytes = blocks * ggml_block;
        let rows_per_chunk = (LOAD_CHUNK_BYTES / row_bytes.max(1) / PANEL).max(1) * PANEL;
        let layout = Layout { dtype, k, n, blocks };
        (0..n.div_ceil(rows_per_chunk)).into_par_iter().try_for_each_init(Vec::new, |bytes, chunk| {
            let out = shared; // the whole wrapper, not its pointer field alone
            let rows = chunk * rows_per_chunk..((chunk + 1) * rows_per_chunk).min(n);
            read(rows.clone(), bytes).map_err(PackError::Read)?;
            for p in rows.start / PANEL..rows.end.div_ceil(PANEL) {
                for b in 0..blocks {
                    let at = layout.block_offset(p, b);
                    let size = block_bytes(dtype);
                    assert!(at + size <= packed_len);
                    // SAFETY: chunks are whole panels, so block (p, b) is written by this task
                    // alone, within the buffer (asserted), which outlives the tasks.
                    let dst = unsafe { std::slice::from_raw_parts_mut(out.0.add(at), size) };
                    let (scales, quants) = dst.split_at_mut(SCALE_BYTES);
                    for j in 0..PANEL.min(n - p * PANEL) {
                        let row = p * PANEL + j - rows.start;
                        let src = &bytes[row * row_bytes + b * ggml_block..][..ggml_block];
                        scales[j * 2..j * 2 + 2].copy_from_slice(&src[..2]);
                        // Q8_0: input i is quant i, sign flipped. Q4_0: byte i holds inputs i
                        // and i + 16, as our byte for input i of column j does.
                        for (i, &q) in src[2..].iter().enumerate() {
                            match dtype {
                                WeightDtype::Q8_0 => quants[q8_offset(i, j)] = q ^ Q8_SIGN_FLIP,
                                _ => quants[q4_position(i, j).0] = q,
                            }
                        }
                    }
                }
            }
            Ok(())
        })?;
        Ok(PackedMatrix { data: WeightBytes::Own(data), dtype, order: Order::Inputs, k, n })
    }

    /// Packs `w`, row-major (k, n), or its transpose when `transposed` (`w` is then (n, k)).
    #[cfg(test)]
    pub fn from_values(dtype: WeightDtype, w: &[f32], k: usize, n: usize, transposed: bool) -> Option<Self> {
        assert_eq!(w.len(), k * n);
        let cols = if transposed { k } else { n };
        let read = |rows: std::ops::Range<usize>, values: &mut Vec<f32>| -> Result<(), ()> {
            values.clear();
            values.extend_from_slice(&w[rows.start * cols..rows.end * cols]);
            Ok(())
        };
        Self::pack(dtype, k, n, transposed, read).ok()
    }

    /// Bytes a (k, n) matrix in `dtype` packs into.
    pub fn packed_len(dtype: WeightDtype, k: usize, n: usize) -> usize {
        n.div_ceil(PANEL) * k.div_ceil(BLOCK) * block_bytes(dtype)
    }

    /// A (k, n) matrix in `dtype` whose packed bytes are `data` (a packed-cache file's, written
    /// from `packed_bytes` with the same `LAYOUT_VERSION` and CPU paths, so in this process's
    /// `Order::of(dtype)`); None if it is not `packed_len` long.
    pub fn from_packed_bytes(data: WeightBytes, dtype: WeightDtype, k: usize, n: usize) -> Option<Self> {
        let order = Order::of(dtype);
        (data.bytes().len() == Self::packed_len(dtype, k, n)).then_some(PackedMatrix {
            data,
            dtype,
            order,
            k,
            n,
        })
    }

    /// The packed bytes, exactly `packed_len` of them (to write a packed-cache file).
    pub fn packed_bytes(&self) -> &[u8] {
        &self.data.bytes()[..Self::packed_len(self.dtype, self.k, self.n)]
    }

    /// `from_values` with its blocks in `order`, whatever this CPU's products read.
    #[cfg(test)]
    pub fn from_values_in(dtype: WeightDtype, order: Order, w: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(w.len(), k * n);
        let read = |rows: std::ops::Range<usize>, values: &mut Vec<f32>| -> Result<(), ()> {
            values.clear();
            values.extend_from_slice(&w[rows.start * n..rows.end * n]);
            Ok(())
        };
        Self::pack_in(dtype, order, k, n, false, read).unwrap()
    }

    pub fn dtype(&self) -> WeightDtype {
        self.dtype
    }

    pub fn order(&self) -> Order {
        self.order
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn panels(&self) -> usize {
        self.n.div_ceil(PANEL)
    }

    fn layout(&self) -> Layout {
        Layout { dtype: self.dtype, k: self.k, n: self.n, blocks: self.k.div_ceil(BLOCK) }
    }

    /// Panel `p`, inputs `inputs`, of an fp32 matrix: `inputs.len() * PANEL` floats.
    pub fn f32_panel(&self, p: usize, inputs: std::ops::Range<usize>) -> &[f32] {
        assert_eq!(self.dtype, WeightDtype::F32);
        let start = self.layout().block_offset(p, 0) / 4;
        &self.data.f32s()[start + inputs.start * PANEL..start + inputs.end * PANEL]
    }

    /// Panel `p` of a bf16 matrix in pairs from input `first` (the start of a block) to the
    /// panel's end: per pair, `PANEL` 32-bit elements (w[2q][j], w[2q + 1][j]), as `bf16_tile`
    /// reads them.
    pub fn paired_panel(&self, p: usize, first: usize) -> &[u32] {
        assert_eq!(self.order, Order::Pairs, "the matrix is not packed in pairs");
        // SAFETY: any 4 bytes are a u32; the mapping is page-aligned and blocks are whole
        // multiples of 4 bytes, so a panel starts on a u32 (asserted below).
        let (head, pairs, _) = unsafe { self.panel_bytes(p, first).align_to::<u32>() };
        assert!(head.is_empty(), "blocks are 4-byte aligned");
        pairs
    }

    /// The bytes of panel `p` from input `first` (the start of a block) to the panel's end, its
    /// blocks in the matrix's `order`.
    pub fn panel_bytes(&self, p: usize, first: usize) -> &[u8] {
        assert_eq!(first % BLOCK, 0, "panels are read from the start of a block");
        let layout = self.layout();
        let end = layout.block_offset(p, 0) + layout.blocks * block_bytes(self.dtype);
        &self.data.bytes()[layout.block_offset(p, 0) + first / BLOCK * block_bytes(self.dtype)..end]
    }

    /// Panel `p`, inputs `inputs` (starting on a block), as f32 values into `out`
    /// (`inputs.len() * PANEL` floats, input-major).
    pub fn decode_panel(&self, p: usize, inputs: std::ops::Range<usize>, out: &mut [f32]) {
        assert_eq!(inputs.start % BLOCK, 0, "panels are decoded from the start of a block");
        assert_eq!(out.len(), inputs.len() * PANEL);
        let (layout, size) = (self.layout(), block_bytes(self.dtype));
        for (b, out) in (inputs.start / BLOCK..).zip(out.chunks_mut(BLOCK_VALUES)) {
            let at = layout.block_offset(p, b);
            decode(self.dtype, self.order, &self.data.bytes()[at..at + size], out);
        }
    }

    /// Column `j` (all k inputs): for the transposed embeddings, the embedding of token `j`.
    pub fn column(&self, j: usize) -> Vec<f32> {
        let (p, col) = (j / PANEL, j % PANEL);
        let (layout, size) = (self.layout(), block_bytes(self.dtype));
        let mut column = vec![0f32; self.k];
        for (b, out) in column.chunks_mut(BLOCK).enumerate() {
            let at = layout.block_offset(p, b);
            decode_column(self.dtype, self.order, &self.data.bytes()[at..at + size], col, out);
        }
        column
    }
}

/// Why a matrix could not be packed.
#[derive(Debug)]
pub enum PackError<E> {
    /// What the reader failed with.
    Read(E),
    /// No memory for the packed matrix.
    Memory(std::io::Error),
    /// A value the dtype cannot hold (fp16 ends at ±65504).
    OutOfRange(f32),
}

/// Where blocks are in a packed matrix.
struct Layout {
    dtype: WeightDtype,
    k: usize,
    n: usize,
    blocks: usize,
}

impl Layout {
    fn block_offset(&self, p: usize, b: usize) -> usize {
        debug_assert!(p < self.n.div_ceil(PANEL) && b * BLOCK < self.k.max(1));
        (p * self.blocks + b) * block_bytes(self.dtype)
    }
}

/// Writes `block` (`BLOCK_VALUES` f32, input-major) into `dst` in `dtype` and `order`; fails
/// with the first value `dtype` cannot hold.
fn encode(dtype: WeightDtype, order: Order, block: &[f32], dst: &mut [u8]) -> Result<(), f32> {
    match dtype {
        WeightDtype::F32 => {
            // SAFETY: any 4 bytes are an f32; blocks start on multiples of 4 of a page-aligned buffer.
            let (head, values, _) = unsafe { dst.align_to_mut::<f32>() };
            assert!(head.is_empty(), "blocks are 4-byte aligned");
            values.copy_from_slice(block);
        }
        WeightDtype::Bf16 => {
            let halves = as_u16s_mut(dst).reinterpret_cast_mut::<bf16>();
            halves.convert_from_f32_slice(block);
            if order == Order::Pairs {
                into_pairs(as_u16s_mut(dst));
            }
        }
        WeightDtype::F16 => {
            let halves = as_u16s_mut(dst).reinterpret_cast_mut::<f16>();
            halves.convert_from_f32_slice(block);
            if let Some(i) = halves.iter().position(|h| h.is_infinite()) {
                return Err(block[i]);
            }
        }
        WeightDtype::Q8_0 => {
            // As llama.cpp's quantize_row_q8_0_ref, per column (the loops run over the panel's
            // columns, which the compiler vectorises): d = max |x| / 127, q = round(x / d) with
            // the f32 d; the block keeps d as f16.
            let (scales, quants) = dst.split_at_mut(SCALE_BYTES);
            let mut amax = [0f32; PANEL];
            for row in block.chunks_exact(PANEL) {
                amax.iter_mut().zip(row).for_each(|(m, v)| *m = m.max(v.abs()));
            }
            let d = amax.map(|m| m / 127.0);
            let id = d.map(|d| if d != 0.0 { 1.0 / d } else { 0.0 });
            write_scales(scales, &d);
            for (i, row) in block.chunks_exact(PANEL).enumerate() {
                for (j, (v, id)) in row.iter().zip(&id).enumerate() {
                    quants[q8_offset(i, j)] = round_half_away(v * id) as u8 ^ Q8_SIGN_FLIP;
                }
            }
        }
        WeightDtype::Q4_0 => {
            // As llama.cpp's quantize_row_q4_0_ref: d = (the value of largest magnitude) / -8,
            // q = min(15, trunc(x / d + 8.5)); inputs i and i + 16 share a byte.
            let (scales, quants) = dst.split_at_mut(SCALE_BYTES);
            let mut max = [0f32; PANEL];
            for row in block.chunks_exact(PANEL) {
                max.iter_mut().zip(row).for_each(|(m, &v)| *m = if v.abs() > m.abs() { v } else { *m });
            }
            let d = max.map(|m| m / -8.0);
            let id = d.map(|d| if d != 0.0 { 1.0 / d } else { 0.0 });
            write_scales(scales, &d);
            let quantize = |v: f32, id: f32| ((v * id + 8.5) as i8).min(15) as u8;
            let (low, high) = block.split_at(Q4_PAIR_DISTANCE * PANEL);
            for (i, (low, high)) in low.chunks_exact(PANEL).zip(high.chunks_exact(PANEL)).enumerate() {
                for (j, ((&l, &h), &id)) in low.iter().zip(high).zip(&id).enumerate() {
                    quants[q4_position(i, j).0] = quantize(l, id) | quantize(h, id) << NIBBLE_BITS;
                }
            }
        }
    }
    Ok(())
}

/// Re-lays a block of 16-bit values from input by input into pairs of inputs (`Order::Pairs`).
fn into_pairs(block: &mut [u16]) {
    let inputs = <[u16; BLOCK_VALUES]>::try_from(&*block).expect("a whole block");
    for (i, row) in inputs.chunks_exact(PANEL).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            block[paired_index(i, j)] = v;
        }
    }
}

/// Reads `src`, one block in `dtype` and `order`, into `out` (up to `BLOCK_VALUES` f32,
/// input-major: a shorter `out` takes the block's first inputs).
fn decode(dtype: WeightDtype, order: Order, src: &[u8], out: &mut [f32]) {
    match dtype {
        WeightDtype::F32 => decode_f32(src, out),
        WeightDtype::Bf16 if order == Order::Pairs => decode_bf16_pairs(as_u16s(src), out),
        WeightDtype::Bf16 => decode_bf16(src, out),
        WeightDtype::F16 => decode_f16(&as_u16s(src)[..out.len()], out),
        WeightDtype::Q8_0 => {
            let (scales, quants) = src.split_at(SCALE_BYTES);
            decode_q8(&scales_f32(scales), quants, out)
        }
        WeightDtype::Q4_0 => {
            let (scales, quants) = src.split_at(SCALE_BYTES);
            decode_q4(&scales_f32(scales), quants, out)
        }
    }
}

/// Column `col` of one block in `dtype` and `order` into `out` (its first `out.len()` inputs):
/// one token's embedding is read per block this way, not the block's 1024 values.
fn decode_column(dtype: WeightDtype, order: Order, src: &[u8], col: usize, out: &mut [f32]) {
    let at = |i: usize| match order {
        Order::Inputs => i * PANEL + col,
        Order::Pairs => paired_index(i, col),
    };
    match dtype {
        WeightDtype::F32 => {
            for (i, o) in out.iter_mut().enumerate() {
                let b = &src[at(i) * 4..at(i) * 4 + 4];
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        WeightDtype::Bf16 => {
            out.iter_mut().enumerate().for_each(|(i, o)| *o = bf16::from_bits(as_u16s(src)[at(i)]).to_f32())
        }
        WeightDtype::F16 => {
            out.iter_mut().enumerate().for_each(|(i, o)| *o = f16::from_bits(as_u16s(src)[at(i)]).to_f32())
        }
        WeightDtype::Q8_0 => {
            let (scales, quants) = src.split_at(SCALE_BYTES);
            let scale = scales_f32(scales)[col];
            out.iter_mut()
                .enumerate()
                .for_each(|(i, o)| *o = q8_value(quants[q8_offset(i, col)]) as f32 * scale);
        }
        WeightDtype::Q4_0 => {
            let (scales, quants) = src.split_at(SCALE_BYTES);
            let scale = scales_f32(scales)[col];
            for (i, o) in out.iter_mut().enumerate() {
                *o = q4_value(quants, i, col) as f32 * scale;
            }
        }
    }
}

/// A block's bytes as u16 values (blocks start on even offsets of a page-aligned buffer).
fn as_u16s(src: &[u8]) -> &[u16] {
    // SAFETY: any two bytes are a u16; align_to yields only whole aligned values.
    let (head, values, _) = unsafe { src.align_to::<u16>() };
    assert!(head.is_empty(), "blocks are 2-byte aligned");
    values
}

fn as_u16s_mut(dst: &mut [u8]) -> &mut [u16] {
    // SAFETY: as `as_u16s`.
    let (head, values, _) = unsafe { dst.align_to_mut::<u16>() };
    assert!(head.is_empty(), "blocks are 2-byte aligned");
    values
}

/// Column scales `d` as the f16 that start a quantized block.
fn write_scales(dst: &mut [u8], d: &[f32; PANEL]) {
    as_u16s_mut(dst).reinterpret_cast_mut::<f16>().convert_from_f32_slice(d);
}

fn scales_f32(src: &[u8]) -> [f32; PANEL] {
    let mut scales = [0f32; PANEL];
    as_u16s(src).reinterpret_cast::<f16>().convert_to_f32_slice(&mut scales);
    scales
}

simd_dispatch! {
    fn decode_f32(src: &[u8], out: &mut [f32]) => decode_f32_body
}

#[inline(always)]
fn decode_f32_body(src: &[u8], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(src.chunks_exact(4)) {
        *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

/// A bf16 block in pairs (`Order::Pairs`) as f32, input-major, into `out` (its first inputs).
/// Only tests read whole blocks back (products read the pairs, embeddings a column each).
fn decode_bf16_pairs(src: &[u16], out: &mut [f32]) {
    for (i, row) in out.chunks_mut(PANEL).enumerate() {
        for (j, o) in row.iter_mut().enumerate() {
            *o = bf16::from_bits(src[paired_index(i, j)]).to_f32();
        }
    }
}

simd_dispatch! {
    fn decode_bf16(src: &[u8], out: &mut [f32]) => decode_bf16_body
}

#[inline(always)]
fn decode_bf16_body(src: &[u8], out: &mut [f32]) {
    // A bf16 is the top half of an f32.
    for (o, &v) in out.iter_mut().zip(as_u16s(src)) {
        *o = f32::from_bits((v as u32) << 16);
    }
}

/// IEEE halves to f32 with the CPU's conversion instruction (AVX-512F or F16C), else half's.
fn decode_f16(src: &[u16], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if simd::level() >= Level::Avx512 {
        // SAFETY: the CPU has AVX-512F (`simd::level`).
        return unsafe { decode_f16_avx512(src, out) };
    }
    src.reinterpret_cast::<f16>().convert_to_f32_slice(out);
}

/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn decode_f16_avx512(src: &[u16], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let whole = src.len().min(out.len()) / 16 * 16;
    for (s, o) in src[..whole].chunks_exact(16).zip(out[..whole].chunks_exact_mut(16)) {
        // SAFETY: `s` holds 16 halves (32 bytes) and `o` 16 floats; unaligned loads and stores.
        unsafe { _mm512_storeu_ps(o.as_mut_ptr(), _mm512_cvtph_ps(_mm256_loadu_si256(s.as_ptr().cast()))) };
    }
    src[whole..].reinterpret_cast::<f16>().convert_to_f32_slice(&mut out[whole..]);
}

simd_dispatch! {
    fn decode_q8(scales: &[f32; PANEL], quants: &[u8], out: &mut [f32]) => decode_q8_body
}

#[inline(always)]
fn decode_q8_body(scales: &[f32; PANEL], quants: &[u8], out: &mut [f32]) {
    // Input by input (out's rows); each row's 32 columns are 4 bytes apart in their group.
    for (i, row) in out.chunks_exact_mut(PANEL).enumerate() {
        for (j, (o, s)) in row.iter_mut().zip(scales).enumerate() {
            *o = q8_value(quants[q8_offset(i, j)]) as f32 * s;
        }
    }
}

/// A stored q8 byte's int8 value.
#[inline(always)]
fn q8_value(stored: u8) -> i8 {
    (stored ^ Q8_SIGN_FLIP) as i8
}

simd_dispatch! {
    fn decode_q4(scales: &[f32; PANEL], quants: &[u8], out: &mut [f32]) => decode_q4_body
}

#[inline(always)]
fn decode_q4_body(scales: &[f32; PANEL], quants: &[u8], out: &mut [f32]) {
    // Input by input (out's rows), as `decode_q8_body`.
    for (i, row) in out.chunks_exact_mut(PANEL).enumerate() {
        for (j, (o, s)) in row.iter_mut().zip(scales).enumerate() {
            *o = q4_value(quants, i, j) as f32 * s;
        }
    }
}

/// What a stored q4 value is offset by (Q4_0's own: values -8..=7 stored as 0..=15).
pub const Q4_OFFSET: i8 = 8;

/// The q4 value of input `i` of column `j` in a block's `quants`.
#[inline(always)]
fn q4_value(quants: &[u8], i: usize, j: usize) -> i8 {
    let (at, shift) = q4_position(i, j);
    ((quants[at] >> shift) & 0xF) as i8 - Q4_OFFSET
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_half_away_is_roundf_as_i8() {
        let special =
            [0.5, -0.5, 1.5, -1.5, 2.5, 126.5, 127.49, 127.5, -128.5, 0.49999997, -0.49999997, 1e9, -1e9];
        let special = special.into_iter().chain([f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0]);
        let spread = (0..200_000).map(|i| (i as f32 - 100_000.0) / 700.0);
        for x in special.chain(spread) {
            assert_eq!(round_half_away(x), x.round() as i8, "{x}");
        }
    }

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|v| (((v + seed) * 37 % 101) as f32 - 50.0) / 25.0).collect()
    }

    /// The matrix as f32, column by column, through `decode_panel`.
    fn unpacked(packed: &PackedMatrix) -> Vec<f32> {
        let (k, n) = (packed.k(), packed.n());
        let padded = k.div_ceil(BLOCK) * BLOCK;
        let mut w = vec![0f32; k * n];
        let mut panel = vec![0f32; padded * PANEL];
        for p in 0..packed.panels() {
            packed.decode_panel(p, 0..padded, &mut panel);
            for i in 0..k {
                for j in 0..PANEL.min(n - p * PANEL) {
                    w[i * n + p * PANEL + j] = panel[i * PANEL + j];
                }
            }
        }
        w
    }

    #[test]
    fn fp32_packs_rows_and_transposes_exactly_with_padded_edges() {
        let (k, n) = (37, 70);
        let w = values(k * n, 0);
        let packed = PackedMatrix::from_values(WeightDtype::F32, &w, k, n, false).unwrap();
        assert_eq!(packed.panels(), 3);
        assert_eq!(unpacked(&packed), w);
        assert_eq!(packed.f32_panel(1, 2..3)[..2], [w[2 * n + 32], w[2 * n + 33]]);
        assert!(packed.f32_panel(2, 0..k).chunks(PANEL).all(|row| row[6..].iter().all(|&v| v == 0.0)));
        // (n, k) transposed packs to the same matrix as its (k, n) transpose.
        let wt: Vec<f32> = (0..n).flat_map(|j| (0..k).map(|i| w[i * n + j]).collect::<Vec<_>>()).collect();
        let from_transposed = PackedMatrix::from_values(WeightDtype::F32, &wt, k, n, true).unwrap();
        assert_eq!(from_transposed.data.bytes(), packed.data.bytes());
        assert_eq!(packed.column(33), (0..k).map(|i| w[i * n + 33]).collect::<Vec<_>>());
    }

    #[test]
    fn sixteen_bit_types_round_each_value_to_nearest() {
        let (k, n) = (40, 33);
        let w = values(k * n, 3).iter().map(|v| v * 1.001).collect::<Vec<_>>();
        let bf = unpacked(&PackedMatrix::from_values(WeightDtype::Bf16, &w, k, n, false).unwrap());
        let fp = unpacked(&PackedMatrix::from_values(WeightDtype::F16, &w, k, n, false).unwrap());
        for ((v, b), f) in w.iter().zip(&bf).zip(&fp) {
            assert_eq!(*b, bf16::from_f32(*v).to_f32());
            assert_eq!(*f, f16::from_f32(*v).to_f32());
        }
        assert!(PackedMatrix::from_values(WeightDtype::F16, &[7e4], 1, 1, false).is_none());
    }

    #[test]
    fn a_column_reads_the_same_values_as_its_panel_in_every_dtype() {
        let (k, n) = (70, 40); // a partial last block and panel
        let w = values(k * n, 7);
        for dtype in WeightDtype::ALL {
            let packed = PackedMatrix::from_values(dtype, &w, k, n, false).unwrap();
            let all = unpacked(&packed);
            for j in [0, 5, 31, 32, 39] {
                let expected: Vec<f32> = (0..k).map(|i| all[i * n + j]).collect();
                assert_eq!(packed.column(j), expected, "{dtype} column {j}");
            }
        }
    }

    #[test]
    fn q8_values_are_stored_in_lanes_of_four_inputs_plus_128() {
        // Integers, each column's largest 127: the scale is 1 and each value its own int8.
        let (k, n) = (BLOCK, PANEL);
        let value =
            |i: usize, j: usize| if i == BLOCK - 1 { 127 } else { ((i * 7 + j * 13) % 200) as i32 - 100 };
        let w: Vec<f32> = (0..k * n).map(|v| value(v / n, v % n) as f32).collect();
        let packed = PackedMatrix::from_values(WeightDtype::Q8_0, &w, k, n, false).unwrap();
        let quants = &packed.panel_bytes(0, 0)[SCALE_BYTES..];
        for i in 0..k {
            for j in 0..n {
                // Lanes of 4 consecutive inputs, one per column, each value + 128.
                let at = (i / 4 * PANEL + j) * 4 + i % 4;
                assert_eq!(quants[at] as i32, value(i, j) + 128, "input {i}, column {j}");
            }
        }
        assert_eq!(q8_value(0x80), 0);
        assert_eq!(q8_value(0), -128);
    }

    #[test]
    fn q4_values_are_stored_in_q8_lanes_two_to_a_byte_plus_8() {
        // Integers, each column's largest magnitude -8: the scale is 1 and each value its own.
        let (k, n) = (BLOCK, PANEL);
        let value = |i: usize, j: usize| if i == BLOCK - 1 { -8 } else { ((i * 7 + j * 13) % 16) as i32 - 8 };
        let w: Vec<f32> = (0..k * n).map(|v| value(v / n, v % n) as f32).collect();
        let packed = PackedMatrix::from_values(WeightDtype::Q4_0, &w, k, n, false).unwrap();
        let (scales, quants) = packed.panel_bytes(0, 0).split_at(SCALE_BYTES);
        assert!(scales_f32(scales).iter().all(|&d| d == 1.0));
        for i in 0..k {
            for j in 0..n {
                // q8's lane of 4 inputs for inputs 0..16, the same byte's high nibble 16 later.
                let byte = quants[(i % 16 / 4 * PANEL + j) * 4 + i % 4];
                let nibble = if i < 16 { byte & 15 } else { byte >> 4 };
                assert_eq!(nibble as i32, value(i, j) + 8, "input {i}, column {j}");
            }
        }
    }

    #[test]
    fn bf16_in_pairs_reads_back_the_values_of_bf16_input_by_input() {
        // Odd k in a partial last block (a zero-padded pair), a partial last panel. Packing in
        // pairs needs no AVX-512 BF16 (only its products do), so this runs on every CPU.
        let (k, n) = (67, 40);
        let w = values(k * n, 11);
        let pairs = PackedMatrix::from_values_in(WeightDtype::Bf16, Order::Pairs, &w, k, n);
        let inputs = PackedMatrix::from_values_in(WeightDtype::Bf16, Order::Inputs, &w, k, n);
        assert_eq!(unpacked(&pairs), unpacked(&inputs));
        for j in 0..n {
            let expected: Vec<f32> = (0..k).map(|i| bf16::from_f32(w[i * n + j]).to_f32()).collect();
            assert_eq!(pairs.column(j), expected, "column {j}");
        }
        // Input 2q of column j is the low half of pair q's element j, input 2q + 1 the high half.
        let panel = pairs.paired_panel(1, 32);
        let bits = |i: usize, j: usize| bf16::from_f32(w[i * n + j]).to_bits() as u32;
        assert_eq!(panel[3], bits(32, 35) | bits(33, 35) << 16);
        assert_eq!(panel[PANEL + 7], bits(34, 39) | bits(35, 39) << 16);
        assert_eq!(panel[(k - 1 - 32) / PAIR * PANEL], bits(k - 1, 32), "the padding pairs with zero");
    }

    /// llama.cpp's reference quantizers, written out for one block of 32 values.
    fn q8_0_reference(x: &[f32]) -> Vec<f32> {
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let d16 = f16::from_f32(d).to_f32();
        x.iter().map(|v| (v * id).round() as i8 as f32 * d16).collect()
    }

    fn q4_0_reference(x: &[f32]) -> Vec<f32> {
        let max = x.iter().fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let d16 = f16::from_f32(d).to_f32();
        x.iter().map(|v| ((((v * id + 8.5) as i8).min(15)) as i32 - 8) as f32 * d16).collect()
    }

    /// llama.cpp's `dequantize_row_q8_0` / `dequantize_row_q4_0` of one block.
    fn ggml_dequantize(dtype: WeightDtype, block: &[u8]) -> Vec<f32> {
        let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
        match dtype {
            WeightDtype::Q8_0 => block[2..].iter().map(|&q| q as i8 as f32 * d).collect(),
            _ => {
                let low = block[2..].iter().map(|&q| ((q & 15) as i32 - 8) as f32 * d);
                let high = block[2..].iter().map(|&q| ((q >> 4) as i32 - 8) as f32 * d);
                low.chain(high).collect()
            }
        }
    }

    #[test]
    fn ggml_blocks_repack_losslessly_and_dequantize_as_llama_cpp() {
        let (k, n) = (96, 45); // three blocks per row, a partial second panel
        for (dtype, block) in [(WeightDtype::Q8_0, 34), (WeightDtype::Q4_0, 18)] {
            // Arbitrary bytes with finite scales: every quant pattern, signs included.
            let mut rows: Vec<u8> = (0..n * k / BLOCK * block).map(|i| (i * 73 % 251) as u8).collect();
            for (index, chunk) in rows.chunks_exact_mut(block).enumerate() {
                let scale = f16::from_f32((index % 7) as f32 * 0.01 - 0.03);
                chunk[..2].copy_from_slice(&scale.to_le_bytes());
            }
            let row_bytes = k / BLOCK * block;
            let read = |r: std::ops::Range<usize>, bytes: &mut Vec<u8>| -> Result<(), ()> {
                bytes.clear();
                bytes.extend_from_slice(&rows[r.start * row_bytes..r.end * row_bytes]);
                Ok(())
            };
            let packed = PackedMatrix::from_ggml_blocks(dtype, k, n, read).unwrap();
            let got = unpacked(&packed);
            for j in 0..n {
                for b in 0..k / BLOCK {
                    let src = &rows[j * row_bytes + b * block..][..block];
                    for (i, e) in ggml_dequantize(dtype, src).iter().enumerate() {
                        assert_eq!(
                            got[(b * BLOCK + i) * n + j].to_bits(),
                            e.to_bits(),
                            "{dtype} row {j} input {i}"
                        );
                    }
                }
            }
            // Column j is row j of the stored matrix: the embedding lookup of a tied head.
            let row3: Vec<f32> = (0..k / BLOCK)
                .flat_map(|b| ggml_dequantize(dtype, &rows[3 * row_bytes + b * block..][..block]))
                .collect();
            assert_eq!(packed.column(3), row3);
        }
    }

    #[test]
    fn quantized_types_dequantize_as_llama_cpp_blocks_along_the_inputs() {
        let (k, n) = (64, 40); // two blocks of inputs, a partial second panel
        let mut w = values(k * n, 5);
        w[..n].fill(0.0); // an all-zero column block scales by 0
        for (dtype, reference) in [
            (WeightDtype::Q8_0, q8_0_reference as fn(&[f32]) -> Vec<f32>),
            (WeightDtype::Q4_0, q4_0_reference),
        ] {
            for transposed in [false, true] {
                let stored: Vec<f32> = match transposed {
                    false => w.clone(),
                    true => (0..n).flat_map(|j| (0..k).map(|i| w[i * n + j]).collect::<Vec<_>>()).collect(),
                };
                let got = unpacked(&PackedMatrix::from_values(dtype, &stored, k, n, transposed).unwrap());
                for j in 0..n {
                    for b in 0..k / BLOCK {
                        let block: Vec<f32> = (0..BLOCK).map(|i| w[(b * BLOCK + i) * n + j]).collect();
                        let expected = reference(&block);
                        for (i, e) in expected.iter().enumerate() {
                            assert_eq!(got[(b * BLOCK + i) * n + j], *e, "{dtype} column {j} input {i}");
                        }
                    }
                }
            }
        }
    }
}
