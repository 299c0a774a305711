//! The AVX2 integer tile on q8 and q4 panels (`plan::Tile::Int8`): 8 columns per register,
//! `vpmaddubsw` + `vpmaddwd` (with llama.cpp's sign trick for q8; see `int8`).

use std::arch::x86_64::*;

use super::int8::{Int8Format, Operands, NIBBLE_MASK};
use super::layout::{PANEL, Q4_PAIR_DISTANCE, Q8_LANE_INPUTS, Q8_SIGN_FLIP, SCALE_BYTES};

/// Columns per register: 8 lanes of 32 bits.
const COLUMNS: usize = 8;

/// Columns per pass over the inputs: half a panel, 2 registers.
const HALF: usize = PANEL / 2;

/// Registers per row of a pass.
const V: usize = HALF / COLUMNS;

/// Rows per pass: 3 rows x 2 registers of i32 sums, 4 of weights (q8: signed and absolute; q4:
/// loaded and unpacked), the ones, a mask or a broadcast, and a product in flight: 14 of the 16
/// registers. (The f32 totals wait in the tile, in L1, between blocks.)
const MAX_ROWS: usize = 3;

/// One packed panel `w` in format `F` for `mr` rows (1 to 6) of `x`, in passes of at most 3 rows
/// by half a panel; `tile` points at the panel's first column of the first row, rows `ldt` apart.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C; `x` must hold `mr` rows of `x.blocks` blocks, `w` that
/// many blocks packed in `F`'s dtype, and `tile` `mr` rows of `PANEL` values `ldt` apart.
pub unsafe fn run<F: Int8Format>(x: &Operands, mr: usize, w: *const u8, tile: *mut f32, ldt: usize) {
    let passes = mr.div_ceil(MAX_ROWS);
    for pass in 0..passes {
        let (r0, r1) = (pass * mr / passes, (pass + 1) * mr / passes); // balanced: 5 = 2 + 3
        for half in 0..PANEL / HALF {
            // SAFETY: rows r0..r1 < mr, the half panel's columns (the caller's conditions).
            unsafe {
                let (x, tile) = (x.skip_rows(r0), tile.add(r0 * ldt + half * HALF));
                match r1 - r0 {
                    1 => kernel::<F, 1>(&x, w, half, tile, ldt),
                    2 => kernel::<F, 2>(&x, w, half, tile, ldt),
                    3 => kernel::<F, 3>(&x, w, half, tile, ldt),
                    _ => unreachable!("passes have 1 to {MAX_ROWS} rows"),
                }
            }
        }
    }
}

/// `MR` rows by columns `half * HALF ..` of the panel `w` into `tile` (pointing at the first).
///
/// # Safety
/// As `run`, for `MR` rows and half `half` (0 or 1).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn kernel<F: Int8Format, const MR: usize>(
    x: &Operands,
    w: *const u8,
    half: usize,
    tile: *mut f32,
    ldt: usize,
) {
    let block_bytes = F::BLOCK_BYTES;
    let (ones, flip) = (_mm256_set1_epi16(1), _mm256_set1_epi8(Q8_SIGN_FLIP as i8));
    let nibble = _mm256_set1_epi8(NIBBLE_MASK);
    for r in 0..MR {
        for v in 0..V {
            // SAFETY: row r's columns of the half panel (caller).
            unsafe { _mm256_storeu_ps(tile.add(r * ldt + v * COLUMNS), _mm256_setzero_ps()) };
        }
    }
    for b in 0..x.blocks {
        // SAFETY: block b < blocks of the panel (caller).
        let block = unsafe { w.add(b * block_bytes) };
        let mut sums = [[_mm256_setzero_si256(); V]; MR];
        // q4's sums start at minus the offset's share; q8's weights are signed again instead.
        if F::NIBBLES {
            for (r, sums) in sums.iter_mut().enumerate() {
                // SAFETY: row r < MR, block b < blocks (caller).
                *sums = [_mm256_set1_epi32(unsafe { x.start::<F>(r, b) }); V];
            }
        }
        // Adds every row's products of the unsigned bytes `magnitude` by the row's 4 activations
        // from input `i` of the block, with the signs of `signs` (q8) or as they are (q4).
        let dot = |sums: &mut [[__m256i; V]; MR], magnitude: [__m256i; V], signs: Option<[__m256i; V]>, i| {
            for (r, sums) in sums.iter_mut().enumerate() {
                // SAFETY: row r < MR, block b, inputs i..i + 4 < BLOCK (caller).
                let four = _mm256_set1_epi32(unsafe { x.four(r, b, i) });
                for (v, (s, &m)) in sums.iter_mut().zip(&magnitude).enumerate() {
                    let four = signs.map_or(four, |signs| _mm256_sign_epi8(four, signs[v]));
                    let pairs = _mm256_maddubs_epi16(m, four);
                    *s = _mm256_add_epi32(*s, _mm256_madd_epi16(pairs, ones));
                }
            }
        };
        for g in 0..F::LOADS {
            // SAFETY: load g of the block's lanes, this half's columns.
            let loaded: [__m256i; V] = std::array::from_fn(|v| unsafe {
                let at = SCALE_BYTES + (g * PANEL + half * HALF + v * COLUMNS) * Q8_LANE_INPUTS;
                _mm256_loadu_si256(block.add(at).cast())
            });
            let i = g * Q8_LANE_INPUTS;
            if F::NIBBLES {
                dot(&mut sums, loaded.map(|l| _mm256_and_si256(l, nibble)), None, i);
                let high = loaded.map(|l| _mm256_and_si256(_mm256_srli_epi16::<4>(l), nibble));
                dot(&mut sums, high, None, Q4_PAIR_DISTANCE + i);
            } else {
                let signed = loaded.map(|l| _mm256_xor_si256(l, flip));
                dot(&mut sums, signed.map(|w| _mm256_abs_epi8(w)), Some(signed), i);
            }
        }
        // SAFETY: the half's 16 f16 scales at the block's start.
        let scales: [__m256; V] = std::array::from_fn(|v| unsafe {
            _mm256_cvtph_ps(_mm_loadu_si128(block.add((half * HALF + v * COLUMNS) * 2).cast()))
        });
        for (r, sums) in sums.iter().enumerate() {
            // SAFETY: row r < MR, block b < blocks (caller).
            let scale = _mm256_set1_ps(unsafe { x.scale(r, b) });
            for (v, (&s, &ws)) in sums.iter().zip(&scales).enumerate() {
                // SAFETY: row r's columns of the half panel (caller).
                unsafe {
                    let at = tile.add(r * ldt + v * COLUMNS);
                    // The same operations as the AVX-512 kernel's, so both give the same bits.
                    let t =
                        _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(s), ws), scale, _mm256_loadu_ps(at));
                    _mm256_storeu_ps(at, t);
                }
            }
        }
    }
}
