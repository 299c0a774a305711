//! Prompts on q8 weights with integer dot products (AVX-512 VNNI `vpdpbusd`), as llama.cpp and
//! onnxruntime multiply Q8_0 weights: the activations are quantized to int8 too, per row and
//! block of 32 inputs (llama.cpp's Q8_0 rounding of its activations, with the scale kept in f32),
//! each block's 32 products are summed exactly in i32, and the sum is scaled by the activation's
//! and the weight's scale into the f32 result. One `vpdpbusd` does 64 multiply-adds where an f32
//! FMA does 16.
//!
//! `vpdpbusd` multiplies unsigned bytes by signed ones. The activations stay signed (4 of a row's
//! bytes broadcast to every lane); the weights are offset by 128 to unsigned when a
//! pair of panels is re-laid for the kernel, and 128 times the sum of the block's activations is
//! taken off the block's sum (it starts at that value). The re-laid block is what `vpdpbusd`
//! reads: each 32-bit lane holds 4 consecutive inputs of one column. Like `panel_matmul`'s f32
//! decode, a pair of panels is re-laid once per row block and shared by all its rows.
//!
//! Decoding (a few rows) does not come here: `direct_tile` multiplies the weights by the f32
//! activations, reading each weight once. x86_64 only (the module is compiled there alone).

use std::arch::x86_64::*;

use rayon::prelude::*;

use super::packed::{BLOCK, PANEL};

/// Bytes of a packed q8 block's f16 column scales, before its int8 values (`packed`'s layout).
const PACKED_SCALE_BYTES: usize = PANEL * 2;

/// Inputs per `vpdpbusd` lane: four bytes make one 32-bit lane.
const LANE_INPUTS: usize = 4;

/// A re-laid block holds the 32 column scales as f32, then `BLOCK / LANE_INPUTS` groups of
/// `PANEL` lanes of 4 unsigned bytes.
const RELAID_SCALE_BYTES: usize = PANEL * 4;
/// Bytes of a re-laid block: its scales and lanes.
pub const RELAID_BLOCK_BYTES: usize = RELAID_SCALE_BYTES + BLOCK * PANEL;

/// The weights' offset: int8 weights plus 128 are the unsigned bytes `vpdpbusd` wants.
const UNSIGNED_OFFSET: i32 = 128;

/// The largest |int8| of a quantized activation (llama.cpp's Q8_0: scale = max |x| / 127).
const Q8_MAX: f32 = 127.0;

/// Rows of the register tile: 6 rows x 2 registers of i32 sums for the current block, 6 x 2 of
/// f32 totals, 2 of weights and 2 of column scales: 28 of the 32 registers.
pub const MAX_TILE_ROWS: usize = 6;

/// A matrix's rows quantized per block of 32 inputs: `values` (int8, `blocks * BLOCK` per row,
/// zero past k), and per (row, block) the scale and `-128 * the sum of its values` (the offset's
/// share of the block's integer sum).
pub struct QuantizedRows {
    values: Vec<i8>,
    scales: Vec<f32>,
    offsets: Vec<i32>,
    blocks: usize,
}

impl QuantizedRows {
    /// Quantizes `m` rows of `k` values, `ldx` apart, several rows at once.
    pub fn new(x: &[f32], ldx: usize, m: usize, k: usize) -> Self {
        let blocks = k.div_ceil(BLOCK);
        let mut rows = QuantizedRows {
            values: vec![0; m * blocks * BLOCK],
            scales: vec![0.0; m * blocks],
            offsets: vec![0; m * blocks],
            blocks,
        };
        let width = blocks * BLOCK;
        // (`max(1)`: chunks are never empty, even for a matrix of no inputs.)
        rows.values
            .par_chunks_mut(width.max(1))
            .zip(rows.scales.par_chunks_mut(blocks.max(1)))
            .zip(rows.offsets.par_chunks_mut(blocks.max(1)))
            .enumerate()
            .for_each(|(r, ((values, scales), offsets))| {
                let x = &x[r * ldx..r * ldx + k];
                for (b, chunk) in x.chunks(BLOCK).enumerate() {
                    let (scale, sum) = quantize_block(chunk, &mut values[b * BLOCK..b * BLOCK + chunk.len()]);
                    scales[b] = scale;
                    offsets[b] = -UNSIGNED_OFFSET * sum;
                }
            });
        rows
    }

    /// Row `r`'s quantized value `i` and its block's scale (for tests' references).
    #[cfg(test)]
    pub fn value(&self, r: usize, i: usize) -> (i8, f32) {
        (self.values[r * self.blocks * BLOCK + i], self.scales[r * self.blocks + i / BLOCK])
    }
}

/// llama.cpp's `quantize_row_q8_0_ref` on one block (of up to 32 values): scale = max |x| / 127,
/// q = round(x / scale) (half away from zero). Returns the scale and the sum of the q.
fn quantize_block(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = amax / Q8_MAX;
    let inverse = if scale != 0.0 { 1.0 / scale } else { 0.0 };
    let mut sum = 0;
    for (q, v) in q.iter_mut().zip(x) {
        *q = (v * inverse).round() as i8;
        sum += *q as i32;
    }
    (scale, sum)
}

/// Re-lays whole packed q8 blocks (`packed`'s layout, `src`) for the kernel into `dst`
/// (`RELAID_BLOCK_BYTES` each): scales widened to f32, and per group of 4 inputs, each column's
/// 4 weights offset to unsigned in one 32-bit lane.
///
/// # Safety
/// The CPU must have AVX-512F, BW and VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
pub unsafe fn relay(src: &[u8], dst: &mut [u8]) {
    let packed_block = PACKED_SCALE_BYTES + BLOCK * PANEL;
    assert!(
        dst.len().is_multiple_of(RELAID_BLOCK_BYTES)
            && src.len() >= dst.len() / RELAID_BLOCK_BYTES * packed_block
    );
    // Output byte o of the lanes of columns 16 h.. is input o % 4 of the group, column 16 h + o / 4:
    // byte (o % 4) * 32 + 16 h + o / 4 of the group's 4 packed rows of 32 columns (two registers).
    let index = |h: usize| {
        let mut bytes = [0u8; 64];
        for (o, b) in bytes.iter_mut().enumerate() {
            *b = ((o % LANE_INPUTS) * PANEL + 16 * h + o / LANE_INPUTS) as u8;
        }
        // SAFETY: 64 bytes into a 64-byte register; AVX-512F (the caller's condition).
        unsafe { _mm512_loadu_si512(bytes.as_ptr().cast()) }
    };
    let (low, high) = (index(0), index(1));
    let offset = _mm512_set1_epi8(UNSIGNED_OFFSET as u8 as i8);
    for (src, dst) in src.chunks_exact(packed_block).zip(dst.chunks_exact_mut(RELAID_BLOCK_BYTES)) {
        let (scales, quants) = src.split_at(PACKED_SCALE_BYTES);
        let (wide, lanes) = dst.split_at_mut(RELAID_SCALE_BYTES);
        for h in 0..2 {
            // SAFETY: 16 f16 scales in, 16 f32 out, within the blocks (chunks of their sizes).
            unsafe {
                let halves = _mm256_loadu_si256(scales.as_ptr().add(h * 32).cast());
                _mm512_storeu_ps(wide.as_mut_ptr().add(h * 64).cast(), _mm512_cvtph_ps(halves));
            }
        }
        for (rows, lanes) in
            quants.chunks_exact(LANE_INPUTS * PANEL).zip(lanes.chunks_exact_mut(LANE_INPUTS * PANEL))
        {
            // SAFETY: 128 bytes in (4 rows of 32) and out, within the blocks.
            unsafe {
                let a = _mm512_loadu_si512(rows.as_ptr().cast());
                let b = _mm512_loadu_si512(rows.as_ptr().add(64).cast());
                for (h, index) in [low, high].into_iter().enumerate() {
                    let lane = _mm512_xor_si512(_mm512_permutex2var_epi8(a, index, b), offset);
                    _mm512_storeu_si512(lanes.as_mut_ptr().add(h * 64).cast(), lane);
                }
            }
        }
    }
}

/// `tile[r * ldt + p * PANEL + j] = sum over the inputs of x[r] * w_p[..][j]` for rows `rows` of
/// `x`, inputs `first ..` (a block's start) for `blocks` blocks, and `panels` (1 or 2) re-laid
/// panels `w` (from the same first input).
///
/// # Safety
/// The CPU must have AVX-512F, BW and VNNI; each `w[p]` must hold `blocks` re-laid blocks;
/// `rows` must be at most `MAX_TILE_ROWS` rows of `x`, whose blocks `first / BLOCK ..` plus
/// `blocks` exist; `tile` must hold `rows.len() * ldt` values, `ldt >= panels * PANEL`.
#[allow(clippy::too_many_arguments)] // the tile's shape and operands, as the f32 kernel's
pub unsafe fn run(
    x: &QuantizedRows,
    rows: std::ops::Range<usize>,
    first: usize,
    blocks: usize,
    w: [&[u8]; 2],
    panels: usize,
    tile: &mut [f32],
    ldt: usize,
) {
    let b0 = first / BLOCK;
    assert!(first.is_multiple_of(BLOCK) && b0 + blocks <= x.blocks && rows.end * x.blocks <= x.scales.len());
    assert!(w[..panels].iter().all(|w| w.len() >= blocks * RELAID_BLOCK_BYTES));
    assert!((1..=2).contains(&panels) && ldt >= panels * PANEL && tile.len() >= rows.len() * ldt);
    let at = rows.start * x.blocks + b0;
    let operands = Operands {
        values: x.values[at * BLOCK..].as_ptr(),
        scales: x.scales[at..].as_ptr(),
        offsets: x.offsets[at..].as_ptr(),
        row_blocks: x.blocks,
        blocks,
    };
    for (p, w) in w.iter().take(panels).enumerate() {
        let out = tile[p * PANEL..].as_mut_ptr();
        macro_rules! by_rows {
            ($($rows:literal)*) => {
                // SAFETY: the rows, blocks and panel are within bounds (asserted above), the
                // tile's rows are `ldt` apart, and the CPU has the features (caller).
                unsafe {
                    match rows.len() {
                        $($rows => kernel::<$rows>(&operands, w.as_ptr(), out, ldt),)*
                        _ => unreachable!("a tile has 1 to {MAX_TILE_ROWS} rows"),
                    }
                }
            };
        }
        by_rows!(1 2 3 4 5 6)
    }
}

/// Where a tile's quantized activations start (row 0, its first block) and their shape.
struct Operands {
    values: *const i8,
    scales: *const f32,
    offsets: *const i32,
    /// Blocks per row (the distance between rows, in blocks).
    row_blocks: usize,
    /// Blocks to sum.
    blocks: usize,
}

/// One panel for `MR` rows: see `run`.
///
/// # Safety
/// As `run`, for one panel `w` and `MR` rows; `tile` points at the panel's first column of row 0.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn kernel<const MR: usize>(x: &Operands, w: *const u8, tile: *mut f32, ldt: usize) {
    /// Registers per panel row: 16 columns each.
    const V: usize = PANEL / 16;
    let mut total = [[_mm512_setzero_ps(); V]; MR];
    for b in 0..x.blocks {
        // SAFETY: block b < blocks of the panel (caller).
        let block = unsafe { w.add(b * RELAID_BLOCK_BYTES) };
        // SAFETY: the block's 32 f32 scales.
        let scales: [__m512; V] =
            std::array::from_fn(|v| unsafe { _mm512_loadu_ps(block.cast::<f32>().add(v * 16)) });
        let mut sums = [[_mm512_setzero_si512(); V]; MR];
        for (r, sums) in sums.iter_mut().enumerate() {
            // SAFETY: row r < MR, block b < blocks (caller).
            let start = _mm512_set1_epi32(unsafe { *x.offsets.add(r * x.row_blocks + b) });
            *sums = [start; V];
        }
        for g in 0..BLOCK / LANE_INPUTS {
            // SAFETY: group g of the block's lanes.
            let lanes: [__m512i; V] = std::array::from_fn(|v| unsafe {
                _mm512_loadu_si512(block.add(RELAID_SCALE_BYTES + (g * PANEL + v * 16) * LANE_INPUTS).cast())
            });
            for (r, sums) in sums.iter_mut().enumerate() {
                // SAFETY: 4 int8 of row r < MR, block b (caller).
                let four = unsafe {
                    x.values
                        .add((r * x.row_blocks + b) * BLOCK + g * LANE_INPUTS)
                        .cast::<i32>()
                        .read_unaligned()
                };
                let four = _mm512_set1_epi32(four);
                for (s, &lane) in sums.iter_mut().zip(&lanes) {
                    *s = _mm512_dpbusd_epi32(*s, lane, four);
                }
            }
        }
        for (r, (total, sums)) in total.iter_mut().zip(&sums).enumerate() {
            // SAFETY: row r < MR, block b < blocks (caller).
            let scale = _mm512_set1_ps(unsafe { *x.scales.add(r * x.row_blocks + b) });
            for ((t, &s), &ws) in total.iter_mut().zip(sums).zip(&scales) {
                *t = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s), ws), scale, *t);
            }
        }
    }
    for (r, total) in total.iter().enumerate() {
        for (v, &t) in total.iter().enumerate() {
            // SAFETY: row r's panel columns in the tile (caller).
            unsafe { _mm512_storeu_ps(tile.add(r * ldt + v * 16), t) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::packed::PackedMatrix;
    use super::super::panel_matmul::matmul;
    use super::super::simd;
    use super::*;
    use crate::dtype::WeightDtype;

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
        assert_eq!(rows.offsets[0], -128 * expected.iter().map(|&q| q as i32).sum::<i32>());
        let zeros = QuantizedRows::new(&[0.0; 40], 40, 1, 40);
        assert_eq!((zeros.value(0, 39), zeros.offsets[1]), ((0, 0.0), 0));
    }

    #[test]
    fn q8_prompts_equal_exact_integer_dot_products_of_the_quantized_rows_and_weights() {
        if !simd::int8_dot() {
            eprintln!(
                "skipped: this CPU (or NEXTTOKEN_SIMD) has no AVX-512 VNNI with VBMI, so q8 prompts \
                 take the f32 path (panel_matmul's own tests)"
            );
            return;
        }
        // k not a multiple of 32 and over one input block (1024), n with a partial and a lone last
        // panel, m from just over one tile to over one row block (258), rows strided.
        for (s, (m, k, n)) in
            [(7, 40, 33), (13, 1100, 96), (64, 768, 100), (130, 77, 64), (259, 2080, 45), (300, 31, 7)]
                .into_iter()
                .enumerate()
        {
            let ldx = k + 5;
            let mut x = values(m * ldx, s as u64);
            x[..k].iter_mut().for_each(|v| *v *= 100.0); // one row of large activations
            let w = values(k * n, 100 + s as u64);
            let packed = PackedMatrix::from_values(WeightDtype::Q8_0, &w, k, n, false).unwrap();
            let mut out = vec![f32::NAN; m * n];
            matmul(&x, ldx, m, &packed, &mut out, &|_, _, _| {});
            let rows = QuantizedRows::new(&x, ldx, m, k);
            let columns: Vec<Vec<f32>> = (0..n).map(|j| packed.column(j)).collect();
            for r in 0..m {
                for (j, column) in columns.iter().enumerate() {
                    // Each weight is int8 x its f16 scale, exact in f32; each activation int8 x
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
                        "({m},{k},{n}) [{r},{j}]: {got} vs {exact} (sum of |terms| {magnitude})"
                    );
                }
            }
        }
    }
}
