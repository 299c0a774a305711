//! The f32 tile without AVX2 (`NEXTTOKEN_SIMD=portable`, other architectures): row by row, each
//! panel row a loop the compiler vectorises for the build's baseline.

use super::layout::PANEL;

/// `tile[r][..] = sum over i < kc of x[r * ldx + i] * w[i][..]` for `mr` rows and `panels`
/// (1 or 2) f32 panels `w` of `kc` inputs each.
pub fn run(mr: usize, x: &[f32], ldx: usize, w: [&[f32]; 2], panels: usize, tile: &mut [f32]) {
    let (kc, width) = (w[0].len() / PANEL, panels * PANEL);
    for (r, sums) in tile.chunks_exact_mut(width).take(mr).enumerate() {
        sums.fill(0.0);
        for i in 0..kc {
            let xr = x[r * ldx + i];
            for (sums, w) in sums.chunks_exact_mut(PANEL).zip(w) {
                for (s, &wv) in sums.iter_mut().zip(&w[i * PANEL..(i + 1) * PANEL]) {
                    *s += xr * wv;
                }
            }
        }
    }
}
