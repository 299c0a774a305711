//! Matrix-vector products for decoding one token, reading the weights at DRAM speed.
//!
//! A decoded token reads every weight once, so its speed is the speed at which the weights
//! stream from memory. gemm's matrix-vector kernels reach about two thirds of that here; these
//! loops are written so the compiler vectorises them for the widest SIMD the CPU has (chosen at
//! run time, never at build time) and touch each weight exactly once, in address order.

use crate::ops::math::dot;

simd_dispatch! {
    /// For each of the `xs` (one input row each, length k): `y[j] += sum_k x[k] * w[k * row_stride + j]`
    /// over the columns `j` of its `y` row: the layout of a Conv1D weight (in, out), row-major.
    /// Weight rows go four at a time, each read from memory once for all the inputs.
    pub fn axpy_rows(xs: &[&[f32]], w: &[f32], row_stride: usize, ys: &mut [&mut [f32]]) => axpy_rows_body
}

simd_dispatch! {
    /// For each of the `xs`: `out[v] = x · w[v * row_stride ..][..k]` over its `out` row: the layout
    /// of the output head (the token embeddings, one contiguous row per token). Each weight row is
    /// read from memory once for all the inputs.
    pub fn dot_rows(xs: &[&[f32]], w: &[f32], row_stride: usize, outs: &mut [&mut [f32]]) => dot_rows_body
}

#[inline(always)]
fn axpy_rows_body(xs: &[&[f32]], w: &[f32], row_stride: usize, ys: &mut [&mut [f32]]) {
    let Some(first) = ys.first() else { return };
    let (n, k_len) = (first.len(), xs[0].len());
    let row = |k: usize| &w[k * row_stride..k * row_stride + n];
    let mut k = 0;
    while k + 4 <= k_len {
        let (w0, w1, w2, w3) = (row(k), row(k + 1), row(k + 2), row(k + 3));
        for (x, y) in xs.iter().zip(ys.iter_mut()) {
            let (x0, x1, x2, x3) = (x[k], x[k + 1], x[k + 2], x[k + 3]);
            for ((((yj, a), b), c), d) in y.iter_mut().zip(w0).zip(w1).zip(w2).zip(w3) {
                *yj += x0 * a + x1 * b + x2 * c + x3 * d;
            }
        }
        k += 4;
    }
    for k in k..k_len {
        for (x, y) in xs.iter().zip(ys.iter_mut()) {
            let xk = x[k];
            for (yj, a) in y.iter_mut().zip(row(k)) {
                *yj += xk * a;
            }
        }
    }
}

/// One dot product per input and weight row. (Interleaving weight rows measured slower here.)
#[inline(always)]
fn dot_rows_body(xs: &[&[f32]], w: &[f32], row_stride: usize, outs: &mut [&mut [f32]]) {
    let Some(first) = outs.first() else { return };
    let (n, k) = (first.len(), xs[0].len());
    for v in 0..n {
        let row = &w[v * row_stride..v * row_stride + k];
        for (x, out) in xs.iter().zip(outs.iter_mut()) {
            out[v] = dot(x, row);
        }
    }
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
        axpy_rows(&[&x], &w[5..], n, &mut [&mut y]); // columns 5..25
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
        dot_rows(&[&x], &w, k + 3, &mut [&mut out]);
        for (r, o) in out.iter().enumerate() {
            let expected: f32 = (0..k).map(|i| x[i] * w[r * (k + 3) + i]).sum();
            assert!((o - expected).abs() < 1e-4);
        }
    }
}
