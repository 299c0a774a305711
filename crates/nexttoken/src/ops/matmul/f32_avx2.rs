//! The AVX2 register tile on f32 panels (fp32 weights as packed, or another
//! dtype's decoded): the sums of the AVX-512 kernel with 8-wide registers, for CPUs without
//! AVX-512. x86_64 only (the module is compiled there alone).
//!
//! AVX2 has 16 vector registers, so a tile of up to 6 rows by two panels (64 columns, 8
//! registers a row) does not fit at once. One row takes the whole width (8 accumulators: the
//! weights streamed once, as the AVX-512 kernel does, for decoding); more rows go in groups of at
//! most 3 (6 = 3 + 3, 4 = 2 + 2), each group over one panel at a time (at most 12 accumulators,
//! 4 weight registers reused by every row of the group). Each group reads whole panels in
//! address order, so the first streams them from memory and the next finds them in L2 (a pair of
//! panels over `INPUT_BLOCK` inputs is 256 KB). Column strips narrower than a panel were measured
//! slower for batches of 4 decoded rows: each strip touched every other cache line.
//!
//! Every sum is one chain of fused multiply-adds over the inputs in order, started from zero,
//! as in the AVX-512 kernel: a row's bits depend neither on the strip, nor on the rows beside
//! it, nor on which of the two kernels ran (tested against `f32::mul_add`).

use super::layout::PANEL;

/// f32 values in an AVX2 register.
const LANES: usize = 8;

/// Registers across one panel.
const VECTORS_PER_PANEL: usize = PANEL / LANES;

/// Rows multiplied together by one panel: 3 x 4 accumulators, 4 weights of the 16 registers.
const MAX_GROUP_ROWS: usize = 3;

/// `tile[r][..] = sum over i < kc of x[r * ldx + i] * w[i][..]` for `mr` rows (1 to 6) and
/// `panels` (1 or 2) f32 panels `w`; `tile` receives `panels * PANEL` sums per row.
///
/// # Safety
/// The CPU must have AVX2 and FMA; `x` must hold `mr` rows of `kc` values `ldx` apart, each
/// `w[p]` (both, even for one panel) `kc * PANEL` values, and `tile` `mr * panels * PANEL`.
pub unsafe fn run(
    mr: usize,
    x: *const f32,
    ldx: usize,
    w: [*const f32; 2],
    panels: usize,
    kc: usize,
    tile: *mut f32,
) {
    let ldt = panels * PANEL;
    if mr == 1 {
        // SAFETY: the caller's conditions; registers 0..4 * panels lie within the tile.
        return unsafe {
            match panels {
                1 => kernel::<1, VECTORS_PER_PANEL>(x, ldx, w, 0, kc, tile, ldt),
                _ => kernel::<1, { 2 * VECTORS_PER_PANEL }>(x, ldx, w, 0, kc, tile, ldt),
            }
        };
    }
    let groups = mr.div_ceil(MAX_GROUP_ROWS);
    for group in 0..groups {
        let (start, end) = (group * mr / groups, (group + 1) * mr / groups);
        // SAFETY: rows start..end < mr of x and of the tile (the caller's conditions).
        let (x, tile) = unsafe { (x.add(start * ldx), tile.add(start * ldt)) };
        for panel in 0..panels {
            let first = panel * VECTORS_PER_PANEL;
            // SAFETY: as above; registers first..first + 4 are panel `panel`'s.
            unsafe {
                match end - start {
                    1 => kernel::<1, VECTORS_PER_PANEL>(x, ldx, w, first, kc, tile, ldt),
                    2 => kernel::<2, VECTORS_PER_PANEL>(x, ldx, w, first, kc, tile, ldt),
                    3 => kernel::<3, VECTORS_PER_PANEL>(x, ldx, w, first, kc, tile, ldt),
                    _ => unreachable!("groups have 1 to {MAX_GROUP_ROWS} rows"),
                }
            }
        }
    }
}

/// The sums of `MR` rows for `V` registers of columns, from register `first` of the tile's
/// width on (registers 0 to 3 in panel `w[0]`, 4 to 7 in `w[1]`), stored `ldt` apart per row.
///
/// # Safety
/// As `run`, and `first + V` registers lie within the tile's panels.
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel<const MR: usize, const V: usize>(
    x: *const f32,
    ldx: usize,
    w: [*const f32; 2],
    first: usize,
    kc: usize,
    tile: *mut f32,
    ldt: usize,
) {
    use std::arch::x86_64::*;
    let columns: [*const f32; V] = std::array::from_fn(|v| {
        let register = first + v;
        // SAFETY: within panel `register / 4`'s first input (the caller's conditions).
        unsafe { w[register / VECTORS_PER_PANEL].add(register % VECTORS_PER_PANEL * LANES) }
    });
    let mut acc = [[_mm256_setzero_ps(); V]; MR];
    for i in 0..kc {
        // The rows' broadcasts first, then one weight register at a time: 3 rows x 4 columns
        // take 12 accumulators, 3 broadcasts and 1 weight, all 16 registers (loading the 4
        // weights first spilled accumulators to the stack and halved the speed of prompts).
        // SAFETY: row r < MR, input i < kc.
        let xs: [__m256; MR] = std::array::from_fn(|r| _mm256_set1_ps(unsafe { *x.add(r * ldx + i) }));
        for (v, column) in columns.iter().enumerate() {
            // SAFETY: input i < kc of the panel (the caller's conditions).
            let wv = unsafe { _mm256_loadu_ps(column.add(i * PANEL)) };
            for (acc, &xr) in acc.iter_mut().zip(&xs) {
                acc[v] = _mm256_fmadd_ps(xr, wv, acc[v]);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for (v, &a) in acc.iter().enumerate() {
            // SAFETY: the tile holds `mr` rows of `ldt` sums; register first + v is within one.
            unsafe { _mm256_storeu_ps(tile.add(r * ldt + (first + v) * LANES), a) };
        }
    }
}
