//! `x @ W` for a weight kept as an f32 tensor (fp32 at the portable level: no AVX2), with its
//! epilogue: `plan::Kernel::Streamed` or `Kernel::Gemm`.
//!
//! A few rows (decoding one token per sequence: up to 16 for an (in, out) weight, up to 4 for the
//! transposed tied head) go to the streaming kernels of `gemv`, which read each weight once for
//! all rows with every core on its own block of output columns: decoding is bound by reading the
//! weights, and one core cannot pull DRAM's bandwidth alone. Everything else goes to gemm: split
//! by columns across threads for few rows (gemm would run them on one thread), gemm's own
//! threading for many (prompts).

use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use super::gemv;
use super::plan::MAX_SPLIT_ROWS;
use crate::ops::epilogue::Finish;
use crate::ops::{SharedOut, View};

/// Columns per block are a multiple of this, so blocks start on whole SIMD registers and lines.
const COLUMN_ALIGN: usize = 16;

/// Output rows per task in the transposed case: small enough to balance the threads.
const DOT_ROWS_PER_TASK: usize = 1024;

thread_local! {
    /// A task's block of outputs in the streaming path, reused by every task on this thread.
    static BLOCK: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `out (m, n) = finish(x (m, k) @ w (k, n))`, each operand its storage and view, with the
/// streaming kernels when `streams` (`plan::Kernel::Streamed`: `x`'s rows, and `w`'s rows or
/// columns, are contiguous), else gemm.
pub fn product(
    (x, xv): (&[f32], View),
    (w, wv): (&[f32], View),
    (m, k, n): (usize, usize, usize),
    streams: bool,
    finish: &Finish,
    out: &mut [f32],
) {
    let threads = rayon::current_num_threads().max(1);
    if streams {
        streamed(x, xv, w, wv, (m, k, n), threads, finish, out);
    } else {
        with_gemm(xv, wv, (m, k, n), threads, out);
        finish.apply_all(out);
    }
}

/// `out = finish(x @ w)` with the `gemv` kernels, one block of output columns per task, each
/// block finished while it is still in cache.
#[allow(clippy::too_many_arguments)]
fn streamed(
    x: &[f32],
    xv: View,
    w: &[f32],
    wv: View,
    (m, k, n): (usize, usize, usize),
    threads: usize,
    finish: &Finish,
    out: &mut [f32],
) {
    let xs: Vec<&[f32]> = (0..m).map(|r| &x[r * xv.row_stride..][..k]).collect();
    let row_major = wv.col_stride == 1; // (in, out), else a transposed (out, in) like the tied head
    let width = match row_major {
        true => n.div_ceil(threads).next_multiple_of(COLUMN_ALIGN),
        false => DOT_ROWS_PER_TASK,
    };
    let out_ptr = SharedOut(out.as_mut_ptr());
    (0..n).into_par_iter().step_by(width).for_each(|j0| {
        let cols = width.min(n - j0);
        let out = out_ptr;
        // Accumulate in a private block: threads summing into neighbouring columns of the same
        // output rows would fight over the cache lines where their columns meet.
        BLOCK.with_borrow_mut(|block| {
            block.clear();
            block.resize(m * cols, 0.0);
            let mut ys: Vec<&mut [f32]> = block.chunks_mut(cols).collect();
            match row_major {
                true => gemv::axpy_rows(&xs, &w[j0..], wv.row_stride, &mut ys),
                false => {
                    let stride = wv.col_stride;
                    gemv::dot_rows(&xs, &w[j0 * stride..], stride, &mut ys)
                }
            }
            for (r, y) in ys.iter().enumerate() {
                // SAFETY: each task writes columns j0..j0 + cols of every row, disjoint from
                // the other tasks' columns.
                let dst = unsafe { std::slice::from_raw_parts_mut(out.0.add(r * n + j0), cols) };
                dst.copy_from_slice(y);
                finish.apply(r, j0, dst);
            }
        });
    });
}

/// `out = x @ w` with gemm: one single-threaded call per block of columns for few rows, gemm's
/// own threading for many.
fn with_gemm(xv: View, wv: View, (m, k, n): (usize, usize, usize), threads: usize, out: &mut [f32]) {
    let out_ptr = SharedOut(out.as_mut_ptr());
    // SAFETY: the views come from the layouts of live storages, every block stays within
    // (m, k) x (k, n), and blocks write disjoint columns of `out`.
    let block = |j0: usize, cols: usize, parallelism: Parallelism| unsafe {
        // Whole structs, not their raw-pointer fields, are what may cross threads.
        let (out, xv, wv) = (out_ptr, xv, wv);
        gemm(
            m,
            cols,
            k,
            out.0.add(j0),
            1,
            n as isize,
            false,
            xv.ptr,
            xv.col_stride as isize,
            xv.row_stride as isize,
            wv.ptr.add(j0 * wv.col_stride),
            wv.col_stride as isize,
            wv.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    };
    if m <= MAX_SPLIT_ROWS && threads > 1 {
        let width = n.div_ceil(threads).next_multiple_of(COLUMN_ALIGN);
        let starts: Vec<usize> = (0..n).step_by(width).collect();
        starts.into_par_iter().for_each(|j0| block(j0, width.min(n - j0), Parallelism::None));
    } else {
        block(0, n, if threads > 1 { Parallelism::Rayon(threads) } else { Parallelism::None });
    }
}
