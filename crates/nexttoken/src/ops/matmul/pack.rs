//! Whole matrices in the packed layout (`layout`): `PackedMatrix`, filled at load from f32
//! values a few MB at a time by several threads (`pack`; llama.cpp's own blocks: `ggml`), or
//! mapped from a packed-cache file, and read back by panel (the kernels) or by column (the
//! embeddings of a tied head). Each matrix has its own mapping (`PageBuffer`), freed to the system
//! with it.

use rayon::prelude::*;

use super::buffer::{PageBuffer, WeightBytes};
use super::format::{block_bytes, decode, decode_column, encode};
use super::layout;
use super::layout::{Blocks, Order, BLOCK, BLOCK_VALUES, PANEL};
use crate::dtype::WeightDtype;

/// Stored rows read and packed per task while loading: a few MB, so that tasks balance and the
/// buffers they read into stay small.
pub const LOAD_CHUNK_BYTES: usize = 4 << 20;

/// A (k, n) matrix in panels; see `layout`.
pub struct PackedMatrix {
    pub(super) data: WeightBytes,
    pub(super) dtype: WeightDtype,
    /// `layout::order(dtype)` when packed; each reader of the bytes follows it.
    pub(super) order: Order,
    pub(super) k: usize,
    pub(super) n: usize,
}

/// Where packing tasks write: disjoint blocks of one buffer (the callers' safety argument).
#[derive(Clone, Copy)]
pub struct SharedBytes(pub *mut u8);
// SAFETY: only a pointer; every task that uses it writes a range no other task touches.
unsafe impl Send for SharedBytes {}
// SAFETY: as above.
unsafe impl Sync for SharedBytes {}

impl PackedMatrix {
    /// Packs a (k, n) matrix in `dtype` from its stored form, read in chunks of stored rows by
    /// `read(rows, values)` (row-major f32, into `values`), several chunks at once. Stored as
    /// (k, n) (a Conv1D weight, `x @ w`) or, when `transposed`, as (n, k) (the tied head:
    /// `x @ wte^T`). Blocks go in `layout::order(dtype)`.
    pub fn pack<E: Send>(
        dtype: WeightDtype,
        k: usize,
        n: usize,
        transposed: bool,
        read: impl Fn(std::ops::Range<usize>, &mut Vec<f32>) -> Result<(), E> + Sync,
    ) -> Result<Self, PackError<E>> {
        Self::pack_in(dtype, layout::order(dtype), k, n, transposed, read)
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
        let layout = Blocks { block_bytes: block_bytes(dtype), k, n };
        let (blocks, panels) = (layout.per_panel(), layout.panels());
        let mut data = PageBuffer::zeroed(layout.total_bytes()).map_err(PackError::Memory)?;
        let packed_len = data.bytes().len();
        let shared = SharedBytes(data.bytes_mut().as_mut_ptr());
        let (stored_rows, stored_cols) = if transposed { (n, k) } else { (k, n) };
        // Chunks are whole blocks of inputs (stored rows of a Conv1D weight) or whole panels of
        // columns (stored rows of the transposed head), so each task writes whole blocks alone.
        let row_bytes = stored_cols.max(1) * 4;
        let rows_per_chunk = (LOAD_CHUNK_BYTES / row_bytes / BLOCK).max(1) * BLOCK;
        let chunks = stored_rows.div_ceil(rows_per_chunk);
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
                        let at = layout.offset(p, b);
                        let size = layout.block_bytes;
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
        Blocks { block_bytes: block_bytes(dtype), k, n }.total_bytes()
    }

    /// A (k, n) matrix in `dtype` whose packed bytes are `data` (a packed-cache file's, written
    /// from `packed_bytes` with the same `LAYOUT_VERSION` and CPU paths, so in this process's
    /// `layout::order(dtype)`); None if it is not `packed_len` long.
    pub fn from_packed_bytes(data: WeightBytes, dtype: WeightDtype, k: usize, n: usize) -> Option<Self> {
        let order = layout::order(dtype);
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

    fn layout(&self) -> Blocks {
        Blocks { block_bytes: block_bytes(self.dtype), k: self.k, n: self.n }
    }

    /// Panel `p`, inputs `inputs`, of an fp32 matrix: `inputs.len() * PANEL` floats.
    pub fn f32_panel(&self, p: usize, inputs: std::ops::Range<usize>) -> &[f32] {
        assert_eq!(self.dtype, WeightDtype::F32);
        let start = self.layout().offset(p, 0) / 4;
        &self.data.f32s()[start + inputs.start * PANEL..start + inputs.end * PANEL]
    }

    /// Panel `p` of a bf16 matrix in pairs from input `first` (the start of a block) to the
    /// panel's end: per pair, `PANEL` 32-bit elements (w[2q][j], w[2q + 1][j]), as `bf16_avx512`
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
        let end = layout.offset(p, 0) + layout.per_panel() * layout.block_bytes;
        &self.data.bytes()[layout.offset(p, 0) + first / BLOCK * layout.block_bytes..end]
    }

    /// Panel `p`, inputs `inputs` (starting on a block), as f32 values into `out`
    /// (`inputs.len() * PANEL` floats, input-major).
    pub fn decode_panel(&self, p: usize, inputs: std::ops::Range<usize>, out: &mut [f32]) {
        assert_eq!(inputs.start % BLOCK, 0, "panels are decoded from the start of a block");
        assert_eq!(out.len(), inputs.len() * PANEL);
        let layout = self.layout();
        let size = layout.block_bytes;
        for (b, out) in (inputs.start / BLOCK..).zip(out.chunks_mut(BLOCK_VALUES)) {
            let at = layout.offset(p, b);
            decode(self.dtype, self.order, &self.data.bytes()[at..at + size], out);
        }
    }

    /// `x` (k values) times column `j`, block by block with each format's reference dot
    /// product (`PackedFormat::dot`): what every kernel's product must equal.
    #[cfg(test)]
    pub fn reference_dot(&self, x: &[f32], j: usize) -> f32 {
        let (layout, (p, col)) = (self.layout(), (j / PANEL, j % PANEL));
        let block = |b: usize| &self.data.bytes()[layout.offset(p, b)..][..layout.block_bytes];
        x.chunks(BLOCK)
            .enumerate()
            .map(|(b, x)| super::format::dot(self.dtype, self.order, block(b), col, x))
            .sum()
    }

    /// Column `j` (all k inputs): for the transposed embeddings, the embedding of token `j`.
    pub fn column(&self, j: usize) -> Vec<f32> {
        let (p, col) = (j / PANEL, j % PANEL);
        let layout = self.layout();
        let size = layout.block_bytes;
        let mut column = vec![0f32; self.k];
        for (b, out) in column.chunks_mut(BLOCK).enumerate() {
            let at = layout.offset(p, b);
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

#[cfg(test)]
pub(super) mod tests {
    use half::bf16;

    use super::super::layout::PAIR;
    use super::*;

    pub fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|v| (((v + seed) * 37 % 101) as f32 - 50.0) / 25.0).collect()
    }

    /// The matrix as f32, column by column, through `decode_panel`.
    pub fn unpacked(packed: &PackedMatrix) -> Vec<f32> {
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
}
