//! Matrix-vector products for decoding one token, reading the weights at DRAM speed.
//!
//! A decoded token reads every weight once, so its speed is the speed at which the weights
//! stream from memory. gemm's matrix-vector kernels reach about two thirds of that here; these
//! loops are written so the compiler vectorises them for the widest SIMD the CPU has (chosen at
//! run time, never at build time) and touch each weight exactly once, in address order.

/// `y[j] += sum_k x[k] * w[k * row_stride + j]` for the columns `j` in `y`'s range:
/// the layout of a Conv1D weight (in, out), row-major. Rows go four at a time so `y` is loaded
/// and stored once per four weight rows.
pub fn axpy_rows(x: &[f32], w: &[f32], row_stride: usize, y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports the enabled features.
            return unsafe { axpy_rows_avx512(x, w, row_stride, y) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { axpy_rows_avx2(x, w, row_stride, y) };
        }
    }
    axpy_rows_portable(x, w, row_stride, y)
}

/// `out[r] = x · w[r * row_stride ..][..x.len()]` for each output: the layout of the output head
/// (the token embeddings, one contiguous row per token).
pub fn dot_rows(x: &[f32], w: &[f32], row_stride: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports the enabled features.
            return unsafe { dot_rows_avx512(x, w, row_stride, out) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { dot_rows_avx2(x, w, row_stride, out) };
        }
    }
    dot_rows_portable(x, w, row_stride, out)
}

#[inline(always)]
fn axpy_rows_body(x: &[f32], w: &[f32], row_stride: usize, y: &mut [f32]) {
    let n = y.len();
    let row = |k: usize| &w[k * row_stride..k * row_stride + n];
    let mut k = 0;
    while k + 4 <= x.len() {
        let (x0, x1, x2, x3) = (x[k], x[k + 1], x[k + 2], x[k + 3]);
        let (w0, w1, w2, w3) = (row(k), row(k + 1), row(k + 2), row(k + 3));
        for ((((yj, a), b), c), d) in y.iter_mut().zip(w0).zip(w1).zip(w2).zip(w3) {
            *yj += x0 * a + x1 * b + x2 * c + x3 * d;
        }
        k += 4;
    }
    for k in k..x.len() {
        let xk = x[k];
        for (yj, a) in y.iter_mut().zip(row(k)) {
            *yj += xk * a;
        }
    }
}

/// Sixteen running sums per row: one 512-bit register, or two 256-bit ones, of independent lanes.
/// (Interleaving rows, or more chains per row, measured slower here.)
#[inline(always)]
fn dot_rows_body(x: &[f32], w: &[f32], row_stride: usize, out: &mut [f32]) {
    let k = x.len();
    for (r, o) in out.iter_mut().enumerate() {
        let row = &w[r * row_stride..r * row_stride + k];
        let mut acc = [0f32; 16];
        let (xs, ws) = (x.chunks_exact(16), row.chunks_exact(16));
        let tail: f32 = xs.remainder().iter().zip(ws.remainder()).map(|(a, b)| a * b).sum();
        for (xc, wc) in xs.zip(ws) {
            for i in 0..16 {
                acc[i] += xc[i] * wc[i];
            }
        }
        *o = acc.iter().sum::<f32>() + tail;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn axpy_rows_avx512(x: &[f32], w: &[f32], row_stride: usize, y: &mut [f32]) {
    axpy_rows_body(x, w, row_stride, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn axpy_rows_avx2(x: &[f32], w: &[f32], row_stride: usize, y: &mut [f32]) {
    axpy_rows_body(x, w, row_stride, y)
}

fn axpy_rows_portable(x: &[f32], w: &[f32], row_stride: usize, y: &mut [f32]) {
    axpy_rows_body(x, w, row_stride, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot_rows_avx512(x: &[f32], w: &[f32], row_stride: usize, out: &mut [f32]) {
    dot_rows_body(x, w, row_stride, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_rows_avx2(x: &[f32], w: &[f32], row_stride: usize, out: &mut [f32]) {
    dot_rows_body(x, w, row_stride, out)
}

fn dot_rows_portable(x: &[f32], w: &[f32], row_stride: usize, out: &mut [f32]) {
    dot_rows_body(x, w, row_stride, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: usize, cols: usize) -> Vec<f32> {
        (0..rows * cols).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect()
    }

    #[test]
    fn axpy_rows_multiplies_a_row_major_block() {
        let (k, n) = (13, 37);
        let (x, w) = (matrix(1, k), matrix(k, n));
        let mut y = vec![1.0; 20];
        axpy_rows(&x, &w[5..], n, &mut y); // columns 5..25
        for (j, yj) in y.iter().enumerate() {
            let expected: f32 = 1.0 + (0..k).map(|i| x[i] * w[i * n + 5 + j]).sum::<f32>();
            assert!((yj - expected).abs() < 1e-4, "column {j}: {yj} vs {expected}");
        }
    }

    #[test]
    fn dot_rows_multiplies_by_rows() {
        let (k, rows) = (45, 9);
        let (x, w) = (matrix(1, k), matrix(rows, k + 3));
        let mut out = vec![0.0; rows];
        dot_rows(&x, &w, k + 3, &mut out);
        for (r, o) in out.iter().enumerate() {
            let expected: f32 = (0..k).map(|i| x[i] * w[r * (k + 3) + i]).sum();
            assert!((o - expected).abs() < 1e-4);
        }
    }
}
