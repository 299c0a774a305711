//! The AVX-512 VNNI integer tile on q8 and q4 panels (`plan::Tile::Int8`): 16 columns per
//! register, `vpdpbusd`.

use std::arch::x86_64::*;

use super::int8::{Int8Format, Operands, NIBBLE_MASK};
use super::layout::MAX_TILE_ROWS;
use super::layout::{PANEL, Q4_PAIR_DISTANCE, Q8_LANE_INPUTS, SCALE_BYTES};

/// Columns per register: 16 lanes of 32 bits.
const COLUMNS: usize = 16;

/// Registers per panel row.
const V: usize = PANEL / COLUMNS;

/// One packed panel `w` in format `F` for `mr` rows (1 to 6) of `x`; `tile` points at the
/// panel's first column of the first row, rows `ldt` apart.
///
/// # Safety
/// The CPU must have AVX-512F, BW and VNNI; `x` must hold `mr` rows of `x.blocks` blocks, `w`
/// that many blocks packed in `F`'s dtype, and `tile` `mr` rows of `PANEL` values `ldt` apart.
pub unsafe fn run<F: Int8Format>(x: &Operands, mr: usize, w: *const u8, tile: *mut f32, ldt: usize) {
    macro_rules! by_rows {
        ($($rows:literal)*) => {
            // SAFETY: the caller's conditions are the kernel's.
            unsafe {
                match mr {
                    $($rows => kernel::<F, $rows>(x, w, tile, ldt),)*
                    _ => unreachable!("a tile has 1 to {MAX_TILE_ROWS} rows"),
                }
            }
        };
    }
    by_rows!(1 2 3 4 5 6)
}

/// `run` for `MR` rows: 6 rows x 2 registers of i32 sums for the current block, 6 x 2 of f32
/// totals, 2 of loaded weights (q4: and 2 of one group's unpacked values) and a broadcast: 27 to
/// 29 of the 32 registers. The column scales are loaded once a block's sums are done.
///
/// # Safety
/// As `run`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn kernel<F: Int8Format, const MR: usize>(x: &Operands, w: *const u8, tile: *mut f32, ldt: usize) {
    let block_bytes = F::BLOCK_BYTES;
    let nibble = _mm512_set1_epi8(NIBBLE_MASK);
    let mut total = [[_mm512_setzero_ps(); V]; MR];
    for b in 0..x.blocks {
        // SAFETY: block b < blocks of the panel (caller).
        let block = unsafe { w.add(b * block_bytes) };
        let mut sums = [[_mm512_setzero_si512(); V]; MR];
        for (r, sums) in sums.iter_mut().enumerate() {
            // SAFETY: row r < MR, block b < blocks (caller).
            *sums = [_mm512_set1_epi32(unsafe { x.start::<F>(r, b) }); V];
        }
        // Adds every row's products of the lanes `lanes` (unsigned bytes) by the row's 4
        // activations from input `i` of the block.
        let dot = |sums: &mut [[__m512i; V]; MR], lanes: [__m512i; V], i: usize| {
            for (r, sums) in sums.iter_mut().enumerate() {
                // SAFETY: row r < MR, block b, inputs i..i + 4 < BLOCK (caller).
                let four = _mm512_set1_epi32(unsafe { x.four(r, b, i) });
                for (s, &lane) in sums.iter_mut().zip(&lanes) {
                    *s = _mm512_dpbusd_epi32(*s, lane, four);
                }
            }
        };
        for g in 0..F::LOADS {
            // SAFETY: load g of the block's lanes.
            let loaded: [__m512i; V] = std::array::from_fn(|v| unsafe {
                _mm512_loadu_si512(block.add(SCALE_BYTES + (g * PANEL + v * COLUMNS) * Q8_LANE_INPUTS).cast())
            });
            let i = g * Q8_LANE_INPUTS;
            if F::NIBBLES {
                dot(&mut sums, loaded.map(|l| _mm512_and_si512(l, nibble)), i);
                let high = loaded.map(|l| _mm512_and_si512(_mm512_srli_epi16::<4>(l), nibble));
                dot(&mut sums, high, Q4_PAIR_DISTANCE + i);
            } else {
                dot(&mut sums, loaded, i);
            }
        }
        // SAFETY: the block's 32 f16 scales.
        let scales: [__m512; V] = std::array::from_fn(|v| unsafe {
            _mm512_cvtph_ps(_mm256_loadu_si256(block.add(v * COLUMNS * 2).cast()))
        });
        for (r, (total, sums)) in total.iter_mut().zip(&sums).enumerate() {
            // SAFETY: row r < MR, block b < blocks (caller).
            let scale = _mm512_set1_ps(unsafe { x.scale(r, b) });
            for ((t, &s), &ws) in total.iter_mut().zip(sums).zip(&scales) {
                // The same operations as the AVX2 kernel's, so both give the same bits.
                *t = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s), ws), scale, *t);
            }
        }
    }
    for (r, total) in total.iter().enumerate() {
        for (v, &t) in total.iter().enumerate() {
            // SAFETY: row r's panel columns in the tile (caller).
            unsafe { _mm512_storeu_ps(tile.add(r * ldt + v * COLUMNS), t) };
        }
    }
}
