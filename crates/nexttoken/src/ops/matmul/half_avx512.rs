//! The AVX-512 register tile reading bf16 or fp16 panels directly (`plan::Tile::Widened`): each
//! 16 weights are loaded in their dtype, widened in registers and multiplied into the f32 sums.
//! For a few rows (decoding), this reads each weight once from memory and nothing else; decoding
//! whole panels to f32 first (what prompts do, to share the conversion among hundreds of rows)
//! would write and read back four bytes per weight. x86_64 only (the module is compiled there
//! alone).

use std::arch::x86_64::*;

use super::format::{Bf16, PackedFormat, F16};
use super::layout::{BLOCK, PANEL};
use crate::dtype::WeightDtype;

/// Runs the tile for `mr` rows (1 to 6) and `panels` (1 or 2) panels of `w` (each pointing at
/// its first block), over `kc` inputs; `tile` receives the sums, `panels * PANEL` per row.
///
/// # Safety
/// The CPU must have AVX-512F; `x` must hold `mr` rows of `kc` values `ldx` apart; each `w[p]`
/// must point at `kc.div_ceil(BLOCK)` blocks of a packed panel in `dtype` (bf16 or fp16); `tile`
/// must hold `mr * panels * PANEL` values.
#[allow(clippy::too_many_arguments)] // the tile's shape, operands and dtype, as the fp32 kernel's
pub unsafe fn run(
    dtype: WeightDtype,
    mr: usize,
    x: *const f32,
    ldx: usize,
    w: [*const u8; 2],
    panels: usize,
    kc: usize,
    tile: *mut f32,
) {
    macro_rules! by_shape {
        ($format:ty; $($rows:literal)*) => {
            // SAFETY: the caller's conditions are the kernel's.
            unsafe {
                match (mr, panels) {
                    $(($rows, 1) => kernel::<$format, $rows, 2>(x, ldx, w, kc, tile),)*
                    $(($rows, 2) => kernel::<$format, $rows, 4>(x, ldx, w, kc, tile),)*
                    _ => unreachable!("a tile has 1 to 6 rows and 1 or 2 panels"),
                }
            }
        };
    }
    match dtype {
        WeightDtype::Bf16 => by_shape!(Bf16; 1 2 3 4 5 6),
        WeightDtype::F16 => by_shape!(F16; 1 2 3 4 5 6),
        WeightDtype::F32 => unreachable!("fp32 panels are read by the f32 tiles"),
        WeightDtype::Q8_0 | WeightDtype::Q4_0 => {
            unreachable!("q8 and q4 panels are read by the integer tiles")
        }
    }
}

/// `tile[r][..] = sum over i < kc of x[r * ldx + i] * w[i][..]` for `MR` rows and `V / 2`
/// panels in format `F`.
///
/// # Safety
/// As `run`, for `F`'s dtype.
#[target_feature(enable = "avx512f")]
unsafe fn kernel<F: Widen, const MR: usize, const V: usize>(
    x: *const f32,
    ldx: usize,
    w: [*const u8; 2],
    kc: usize,
    tile: *mut f32,
) {
    let mut acc = [[_mm512_setzero_ps(); V]; MR];
    for b in 0..kc.div_ceil(BLOCK) {
        // SAFETY: block b < kc.div_ceil(BLOCK) of each panel exists (the caller's conditions).
        let blocks = unsafe { [w[0].add(b * F::BLOCK_BYTES), w[1].add(b * F::BLOCK_BYTES)] };
        for i in 0..BLOCK.min(kc - b * BLOCK) {
            let mut ws = [_mm512_setzero_ps(); V];
            for (v, wv) in ws.iter_mut().enumerate() {
                // SAFETY: as above; i < BLOCK.
                *wv = unsafe { F::load(blocks[v / 2], i, v % 2) };
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: row r < MR, input b * BLOCK + i < kc (caller).
                let xr = _mm512_set1_ps(unsafe { *x.add(r * ldx + b * BLOCK + i) });
                for (a, &wv) in acc.iter_mut().zip(&ws) {
                    *a = _mm512_fmadd_ps(xr, wv, *a);
                }
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (v, &a) in acc.iter().enumerate() {
            // SAFETY: the tile holds MR * V * 16 values (caller).
            unsafe { _mm512_storeu_ps(tile.add(r * V * 16 + v * 16), a) };
        }
    }
}

/// A 16-bit format read by this tile: how 16 of its values become 16 f32 (see `layout`).
trait Widen: PackedFormat {
    /// The 16 values of input `i` (< BLOCK), columns `half * 16 ..`, of the block at `block`.
    ///
    /// # Safety
    /// AVX-512F; `block` points at a whole block.
    unsafe fn load(block: *const u8, i: usize, half: usize) -> __m512;
}

impl Widen for Bf16 {
    #[inline(always)]
    unsafe fn load(block: *const u8, i: usize, half: usize) -> __m512 {
        // SAFETY: 16 bf16 of the block (caller); a bf16 is the top half of an f32.
        unsafe {
            let halves = _mm256_loadu_si256(block.add((i * PANEL + half * 16) * 2).cast());
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(halves)))
        }
    }
}

impl Widen for F16 {
    #[inline(always)]
    unsafe fn load(block: *const u8, i: usize, half: usize) -> __m512 {
        // SAFETY: 16 halves of the block (caller).
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(block.add((i * PANEL + half * 16) * 2).cast())) }
    }
}
