//! What the integer tiles (`int8_avx512`, `int8_avx2`) share, for every product on q8 or q4
//! weights, from one decoded token to a prompt of a thousand, with integer dot products
//! (`plan::Tile::Int8`).
//!
//! The activations are quantized once per product, per row and block of 32 inputs, as llama.cpp
//! quantizes them for its Q8_0 and Q4_0 products (`QuantizedRows`: scale = max |x| / 127, kept
//! as f32). The weights are read as they are packed: per block, 32 f16 column scales, then per 4
//! inputs one 32-bit lane per column of 4 unsigned bytes: int8 + 128 for q8 (`layout::q8_offset`),
//! value + 8 for q4, whose bytes hold two lanes, inputs 16 apart, in their low and high nibbles
//! (`layout::q4_position`: an AND, or a shift and an AND, of a loaded register gives one lane's
//! unsigned bytes). Per block, the integer sum of a row's and a column's 32 products is exact;
//! then `total += (sum * column scale) * row scale`, one rounding of the product and one fused
//! multiply-add, block after block. A row goes through the same operations in the same order
//! whatever rows are multiplied with it, and on both kernels, so a row alone and in a batch give
//! the same bits (batch invariance).
//!
//! - AVX-512 VNNI (`int8_avx512`): `vpdpbusd` multiplies 4 unsigned weights by 4 signed
//!   activations and adds them to a 32-bit lane; the offset's share, the offset times the block's
//!   activation sum, starts each sum negated (`Int8Format::OFFSET`), so the sums are those of the
//!   signed weights.
//! - AVX2 (`int8_avx2`): q4's unsigned values (0 to 15) go to `vpmaddubsw` as they are (two
//!   products of at most 15 x 128 stay within i16), started as on AVX-512. q8's sign bit is flipped back
//!   instead, for llama.cpp's sign trick: |w| (unsigned) times x with w's sign moved onto it
//!   (`vpsignb`), so that the sums of two products stay within i16 (2 x 128 x 127 < 32767). Then
//!   `vpmaddwd` by ones adds pairs of those into 32-bit lanes.
//!
//! x86_64 only (the module is compiled there alone).

use rayon::prelude::*;

use super::format::{round_half_away, PackedFormat, Q4, Q8};
use super::layout::{BLOCK, Q4_OFFSET, Q8_LANE_INPUTS, Q8_SIGN_FLIP};

/// The largest |int8| of a quantized activation (llama.cpp's Q8_0: scale = max |x| / 127).
const Q8_MAX: f32 = 127.0;

/// Rows quantized per task: a product of fewer rows (decoding: 1 to a batch of 16) quantizes them
/// on the calling thread, as a task would cost more than the few microseconds they take.
const ROWS_PER_TASK: usize = 16;

/// A matrix's rows quantized per block of 32 inputs: `values` (int8, `blocks * BLOCK` per row,
/// zero past k), and per (row, block) the scale and the sum of its values (which, times the
/// weights' offset, is the offset's share of the block's integer sum: `Operands::start`).
pub struct QuantizedRows {
    values: Vec<i8>,
    scales: Vec<f32>,
    sums: Vec<i32>,
    blocks: usize,
}

impl QuantizedRows {
    /// Quantizes `m` rows of `k` values, `ldx` apart: several rows at once for many rows.
    pub fn new(x: &[f32], ldx: usize, m: usize, k: usize) -> Self {
        let blocks = k.div_ceil(BLOCK);
        let mut rows = QuantizedRows {
            values: vec![0; m * blocks * BLOCK],
            scales: vec![0.0; m * blocks],
            sums: vec![0; m * blocks],
            blocks,
        };
        // (`max(1)`: chunks are never empty, even for a matrix of no inputs.)
        let (width, blocks) = ((blocks * BLOCK).max(1), blocks.max(1));
        let row = |(r, ((values, scales), sums)): (usize, RowParts)| {
            quantize_row(&x[r * ldx..r * ldx + k], values, scales, sums)
        };
        if m <= ROWS_PER_TASK {
            let values = rows.values.chunks_mut(width);
            values
                .zip(rows.scales.chunks_mut(blocks))
                .zip(rows.sums.chunks_mut(blocks))
                .enumerate()
                .for_each(row);
        } else {
            let values = rows.values.par_chunks_mut(width);
            let scales = rows.scales.par_chunks_mut(blocks);
            let each = values.zip(scales).zip(rows.sums.par_chunks_mut(blocks)).enumerate();
            each.with_min_len(ROWS_PER_TASK).for_each(row);
        }
        rows
    }

    /// Row `r`'s quantized value `i` and its block's scale (for tests' references).
    #[cfg(test)]
    pub fn value(&self, r: usize, i: usize) -> (i8, f32) {
        (self.values[r * self.blocks * BLOCK + i], self.scales[r * self.blocks + i / BLOCK])
    }
}

/// One row's `values`, `scales` and `sums`, as `QuantizedRows::new` zips them.
type RowParts<'a> = ((&'a mut [i8], &'a mut [f32]), &'a mut [i32]);

/// One row `x` into its `values`, and its blocks' `scales` and `sums`.
fn quantize_row(x: &[f32], values: &mut [i8], scales: &mut [f32], sums: &mut [i32]) {
    for (b, chunk) in x.chunks(BLOCK).enumerate() {
        (scales[b], sums[b]) = quantize_block(chunk, &mut values[b * BLOCK..b * BLOCK + chunk.len()]);
    }
}

simd_dispatch! {
    /// llama.cpp's `quantize_row_q8_0_ref` on one block (of up to 32 values): scale = max |x| /
    /// 127, q = round(x / scale) (half away from zero, as the weights are rounded:
    /// `format::round_half_away`, not libm's `roundf` per value, which cost 5% of a decoded
    /// token). Returns the scale and the sum of the q. Compiled for the CPU's level.
    fn quantize_block(x: &[f32], q: &mut [i8]) -> (f32, i32) => quantize_block_body
}

#[inline(always)]
fn quantize_block_body(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = amax / Q8_MAX;
    let inverse = if scale != 0.0 { 1.0 / scale } else { 0.0 };
    let mut sum = 0;
    for (q, v) in q.iter_mut().zip(x) {
        *q = round_half_away(v * inverse);
        sum += *q as i32;
    }
    (scale, sum)
}

/// A packed format the integer kernels read (see the module documentation).
pub trait Int8Format: PackedFormat {
    /// What the stored unsigned values are offset by.
    const OFFSET: i32;
    /// Whether a byte holds two inputs' values, `layout::Q4_PAIR_DISTANCE` apart, in its low and
    /// high nibbles (q4), rather than one (q8).
    const NIBBLES: bool;
    /// Loads of `Q8_LANE_INPUTS` bytes per column per block: each gives one or two lanes.
    const LOADS: usize = BLOCK / Q8_LANE_INPUTS / if Self::NIBBLES { 2 } else { 1 };
}

/// q8: int8 + 128 (`layout::Q8_SIGN_FLIP` as a number), the unsigned operand `vpdpbusd` wants.
impl Int8Format for Q8 {
    const OFFSET: i32 = Q8_SIGN_FLIP as i32;
    const NIBBLES: bool = false;
}

/// q4: Q4_0's own values + 8, two to a byte.
impl Int8Format for Q4 {
    const OFFSET: i32 = Q4_OFFSET as i32;
    const NIBBLES: bool = true;
}

/// The low nibble of each byte: one q4 value.
pub const NIBBLE_MASK: i8 = 0x0F;

/// Where a tile's quantized activations start (its first row, first block) and their shape.
pub struct Operands {
    values: *const i8,
    scales: *const f32,
    sums: *const i32,
    /// Blocks per row (the distance between rows, in blocks).
    row_blocks: usize,
    /// Blocks to sum.
    pub blocks: usize,
}

impl Operands {
    /// Rows `rows` of `x` from input `first` (a block's start) on, for `blocks` blocks.
    pub fn new(x: &QuantizedRows, rows: std::ops::Range<usize>, first: usize, blocks: usize) -> Self {
        let (r, b0) = (rows.start, first / BLOCK);
        assert!(
            first.is_multiple_of(BLOCK) && b0 + blocks <= x.blocks && rows.end * x.blocks <= x.scales.len()
        );
        let at = r * x.blocks + b0;
        Operands {
            values: x.values[at * BLOCK..].as_ptr(),
            scales: x.scales[at..].as_ptr(),
            sums: x.sums[at..].as_ptr(),
            row_blocks: x.blocks,
            blocks,
        }
    }

    /// The start of row `r`'s integer sum for block `b` with weights in format `F`: minus the
    /// offset's share, so that the sum is that of the signed weights.
    ///
    /// # Safety
    /// Row `r` and block `b` must be within the operands.
    #[inline(always)]
    pub unsafe fn start<F: Int8Format>(&self, r: usize, b: usize) -> i32 {
        // SAFETY: within the operands (the caller's condition).
        -F::OFFSET * unsafe { *self.sums.add(r * self.row_blocks + b) }
    }

    /// Row `r`'s 4 activations from input `i` of block `b`, as one i32: what one lane multiplies.
    ///
    /// # Safety
    /// Row `r`, block `b` and inputs `i..i + 4` (of the block's 32) must be within the operands.
    #[inline(always)]
    pub unsafe fn four(&self, r: usize, b: usize, i: usize) -> i32 {
        // SAFETY: within the operands (the caller's condition); an unaligned read.
        unsafe { self.values.add((r * self.row_blocks + b) * BLOCK + i).cast::<i32>().read_unaligned() }
    }

    /// The scale of row `r`'s block `b`.
    ///
    /// # Safety
    /// As `start`.
    #[inline(always)]
    pub unsafe fn scale(&self, r: usize, b: usize) -> f32 {
        // SAFETY: within the operands (the caller's condition).
        unsafe { *self.scales.add(r * self.row_blocks + b) }
    }

    /// The same operands from `r` rows further on.
    ///
    /// # Safety
    /// The operands must have more than `r` rows.
    pub unsafe fn skip_rows(&self, r: usize) -> Self {
        // SAFETY: rows r.. exist (the caller's condition).
        unsafe {
            Operands {
                values: self.values.add(r * self.row_blocks * BLOCK),
                scales: self.scales.add(r * self.row_blocks),
                sums: self.sums.add(r * self.row_blocks),
                row_blocks: self.row_blocks,
                blocks: self.blocks,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::layout::MAX_TILE_ROWS;
    use super::super::layout::PANEL;
    use super::super::pack::PackedMatrix;
    use super::super::panels::{matmul, run_int8};
    use super::super::plan;
    use super::*;
    use crate::dtype::WeightDtype;
    use crate::ops::simd::{self, Int8Dot};

    /// A few values in [-1, 1) from a seed (no rand crate in this crate's dependencies).
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn quantizes_activations_as_llama_cpp_q8_0() {
        // max |x| = 127 / 64: the scale is 1 / 64, and halves round away from zero.
        let x = [0.5, -127.0 / 64.0, 0.0, -32.5 / 64.0, 0.5 / 64.0, 1.0];
        let rows = QuantizedRows::new(&x, 6, 1, 6);
        let expected: [i8; 6] = [32, -127, 0, -33, 1, 64];
        for (i, &e) in expected.iter().enumerate() {
            assert_eq!(rows.value(0, i), (e, 1.0 / 64.0), "value {i}");
        }
        assert_eq!(rows.sums[0], expected.iter().map(|&q| q as i32).sum::<i32>());
        let zeros = QuantizedRows::new(&[0.0; 40], 40, 1, 40);
        assert_eq!((zeros.value(0, 39), zeros.sums[1]), ((0, 0.0), 0));
    }

    #[test]
    fn few_rows_quantize_as_many_do() {
        // Few rows are quantized on the calling thread, many in tasks: the same function per row.
        let (m, k) = (ROWS_PER_TASK * 3 + 1, 70);
        let x = values(m * k, 9);
        let many = QuantizedRows::new(&x, k, m, k);
        for r in [0, ROWS_PER_TASK, m - 1] {
            let alone = QuantizedRows::new(&x[r * k..], k, 1, k);
            assert!((0..k).all(|i| alone.value(0, i) == many.value(r, i)), "row {r}");
        }
    }

    /// The dtypes the integer kernels read.
    const DTYPES: [WeightDtype; 2] = [WeightDtype::Q8_0, WeightDtype::Q4_0];

    /// Rows `m` of `k` values, `ldx` apart, one of them large, and a (k, n) matrix in `dtype`.
    fn operands(
        dtype: WeightDtype,
        m: usize,
        k: usize,
        n: usize,
        ldx: usize,
        seed: u64,
    ) -> (Vec<f32>, PackedMatrix) {
        let mut x = values(m * ldx, seed);
        x[..k].iter_mut().for_each(|v| *v *= 100.0); // one row of large activations
        let w = values(k * n, 100 + seed);
        (x, PackedMatrix::from_values(dtype, &w, k, n, false).unwrap())
    }

    #[test]
    fn q8_and_q4_products_equal_exact_integer_dot_products_of_the_quantized_rows_and_weights() {
        let Some(kind) = simd::int8_dot() else {
            let why_not = "this CPU (or NEXTTOKEN_SIMD=portable) has no integer dot product, so q8 and q4 \
                           products take the f32 path (panels' own tests)";
            simd::test_common::kernel_path("avx2-int8", false, why_not);
            return;
        };
        let path = if kind == Int8Dot::Avx512Vnni { "avx512vnni" } else { "avx2-int8" };
        simd::test_common::kernel_path(path, true, "");
        eprintln!("integer dot product in force: {kind:?}");
        // k not a multiple of 32 and over one input block (1024), n with a partial and a lone last
        // panel, m from one row (decoding) to over one row block (258), rows strided.
        let shapes = [
            (1, 40, 33),
            (2, 1100, 96),
            (3, 77, 7),
            (4, 768, 64),
            (5, 31, 45),
            (6, 2080, 40),
            (7, 40, 33),
            (13, 1100, 96),
            (130, 77, 64),
            (259, 2080, 45),
            (300, 31, 7),
        ];
        for ((s, (m, k, n)), dtype) in shapes.into_iter().enumerate().flat_map(|s| DTYPES.map(|d| (s, d))) {
            let ldx = k + 5;
            let (x, packed) = operands(dtype, m, k, n, ldx, s as u64);
            let mut out = vec![f32::NAN; m * n];
            matmul(&x, ldx, m, &packed, plan::tile(&packed, m), &mut out, &|_, _, _| {});
            let rows = QuantizedRows::new(&x, ldx, m, k);
            let columns: Vec<Vec<f32>> = (0..n).map(|j| packed.column(j)).collect();
            for r in 0..m {
                for (j, column) in columns.iter().enumerate() {
                    // Each weight is int8 (or int4) x its f16 scale, exact in f32; each activation int8 x
                    // its f32 scale, exact in f64: this is the sum of the blocks' integer dot
                    // products times both scales, rounded once.
                    let (mut exact, mut magnitude) = (0f64, 0f64);
                    for (i, &wv) in column.iter().enumerate() {
                        let (q, scale) = rows.value(r, i);
                        let term = q as f64 * scale as f64 * wv as f64;
                        exact += term;
                        magnitude += term.abs();
                    }
                    let got = out[r * n + j] as f64;
                    assert!(
                        (got - exact).abs() <= 1e-6 * magnitude + 1e-30,
                        "{dtype} ({m},{k},{n}) [{r},{j}]: {got} vs {exact} (sum of |terms| {magnitude})"
                    );
                }
            }
        }
    }

    #[test]
    fn the_avx2_and_avx512_kernels_give_the_same_bits() {
        let why_not = "AVX-512 VNNI is not in force here (CPU or NEXTTOKEN_SIMD); the other tests cover AVX2";
        if !simd::test_common::kernel_path(
            "avx512vnni",
            simd::int8_dot() == Some(Int8Dot::Avx512Vnni),
            why_not,
        ) {
            return;
        }
        let (m, k, n) = (MAX_TILE_ROWS, 100, 2 * PANEL);
        for dtype in DTYPES {
            let (x, packed) = operands(dtype, m, k, n, k, 3);
            let rows = QuantizedRows::new(&x, k, m, k);
            let w = [packed.panel_bytes(0, 0), packed.panel_bytes(1, 0)];
            for mr in 1..=MAX_TILE_ROWS {
                for panels in 1..=2 {
                    let ldt = panels * PANEL + 3;
                    let [avx512, avx2] = [Int8Dot::Avx512Vnni, Int8Dot::Avx2].map(|kind| {
                        let mut tile = vec![f32::NAN; mr * ldt];
                        run_int8(kind, dtype, &rows, 0..mr, 0..k, w, panels, &mut tile, ldt);
                        tile.chunks(ldt)
                            .flat_map(|row| row[..panels * PANEL].to_vec())
                            .map(f32::to_bits)
                            .collect::<Vec<_>>()
                    });
                    assert_eq!(avx512, avx2, "{dtype}: {mr} rows, {panels} panels");
                }
            }
        }
    }
}
