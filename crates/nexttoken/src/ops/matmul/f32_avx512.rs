//! The AVX-512 register tile on f32 panels (fp32 weights as packed, or another dtype's decoded):
//! up to 6 rows by two panels (64 columns) of sums in registers while it walks the inputs: per
//! input, one load per 16 weights, one broadcast per row and one fused multiply-add per row and
//! 16 columns. Each sum is one chain of fused multiply-adds over the inputs in order, as in
//! `f32_avx2` and `f32_portable`'s reference. x86_64 only (the module is compiled there alone).

use super::layout::PANEL;
use super::layout::{MAX_TILE_ROWS, TILE_PANELS};

/// `tile[r][..] = sum over i < kc of x[r * ldx + i] * w[i][..]` for `mr` rows (1 to 6) and
/// `panels` (1 or 2) f32 panels `w`; `tile` receives `panels * PANEL` sums per row.
///
/// # Safety
/// The CPU must have AVX-512F; `x` must hold `mr` rows of `kc` values `ldx` apart, each `w[p]`
/// `kc * PANEL` values, and `tile` `mr * panels * PANEL`.
pub unsafe fn run(
    mr: usize,
    x: *const f32,
    ldx: usize,
    w: [*const f32; 2],
    panels: usize,
    kc: usize,
    tile: *mut f32,
) {
    macro_rules! dispatch {
        ($($rows:literal)*) => {
            // SAFETY: the caller's conditions are the kernel's.
            unsafe {
                match (mr, panels) {
                    $(($rows, 1) => kernel::<$rows, 2>(x, ldx, w, kc, tile),)*
                    $(($rows, 2) => kernel::<$rows, 4>(x, ldx, w, kc, tile),)*
                    _ => unreachable!("a tile has 1 to {MAX_TILE_ROWS} rows and 1 to {TILE_PANELS} panels"),
                }
            }
        };
    }
    dispatch!(1 2 3 4 5 6)
}

/// `tile[r][..] = sum over i < kc of x[r * ldx + i] * w[i][..]` for `MR` rows and `V / 2` panels
/// (`V` registers per row).
///
/// # Safety
/// The CPU must have AVX-512F; `x` must hold `MR` rows of `kc` values `ldx` apart, each `w[v]`
/// `kc * PANEL` values, and `tile` `MR * V * 16`.
#[target_feature(enable = "avx512f")]
unsafe fn kernel<const MR: usize, const V: usize>(
    x: *const f32,
    ldx: usize,
    w: [*const f32; 2],
    kc: usize,
    tile: *mut f32,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); V]; MR];
    for i in 0..kc {
        let mut ws = [_mm512_setzero_ps(); V];
        for (v, wv) in ws.iter_mut().enumerate() {
            // SAFETY: input i < kc of panel v / 2 (the caller's conditions).
            *wv = unsafe { _mm512_loadu_ps(w[v / 2].add(i * PANEL + (v % 2) * 16)) };
        }
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: row r < MR, input i < kc.
            let xr = _mm512_set1_ps(unsafe { *x.add(r * ldx + i) });
            for (a, &wv) in acc.iter_mut().zip(&ws) {
                *a = _mm512_fmadd_ps(xr, wv, *a);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (v, &a) in acc.iter().enumerate() {
            // SAFETY: the tile holds MR * V * 16 values.
            unsafe { _mm512_storeu_ps(tile.add(r * V * 16 + v * 16), a) };
        }
    }
}
