//! `x @ W` on the CPU with every core busy, also when `x` is a single row.
//!
//! candle's CPU matmul is the `gemm` crate, which spreads large products over threads but runs a
//! matrix-vector product (decoding: one row per sequence) on one thread. Decoding is bound by
//! reading the weights, and one core cannot pull DRAM's bandwidth alone, so for few rows we split
//! the output columns into one block per thread and run one single-threaded gemm per block.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

/// Up to this many rows, split columns across threads; above it gemm's own threading is better.
const MAX_SPLIT_ROWS: usize = 8;

/// Columns per block are a multiple of this, so blocks start on whole SIMD registers and lines.
const COLUMN_ALIGN: usize = 16;

/// `x (m, k) @ w (k, n)` for 2-D tensors of any strides (a transposed `w` is fine).
pub fn matmul(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    let (m, _) = x.dims2()?;
    if x.device().is_cpu() && x.dtype() == DType::F32 && w.dtype() == DType::F32 && m <= MAX_SPLIT_ROWS {
        x.apply_op2_no_bwd(w, &ColumnSplitMatMul)
    } else {
        x.matmul(w)
    }
}

struct ColumnSplitMatMul;

/// A pointer that may be shared across threads because each thread writes disjoint columns.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl CustomOp2 for ColumnSplitMatMul {
    fn name(&self) -> &'static str {
        "column-split-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(x), CpuStorage::F32(w)) = (s1, s2) else {
            candle_core::bail!("column-split-matmul takes f32 tensors");
        };
        let ((m, k), (k2, n)) = (l1.shape().dims2()?, l2.shape().dims2()?);
        if k != k2 {
            candle_core::bail!("column-split-matmul: ({m}, {k}) @ ({k2}, {n})");
        }
        let x = &x[l1.start_offset()..];
        let w = &w[l2.start_offset()..];
        let (x_rs, x_cs) = (l1.stride()[0] as isize, l1.stride()[1] as isize);
        let (w_rs, w_cs) = (l2.stride()[0] as isize, l2.stride()[1] as isize);

        let mut out = vec![0f32; m * n];
        let dst = SharedMut(out.as_mut_ptr());
        let threads = rayon::current_num_threads().max(1);
        let block = n.div_ceil(threads).next_multiple_of(COLUMN_ALIGN).max(COLUMN_ALIGN);
        let starts: Vec<usize> = (0..n).step_by(block).collect();
        starts.into_par_iter().for_each(|j0| {
            let cols = block.min(n - j0);
            let dst = dst;
            // SAFETY: block j0 reads columns j0..j0+cols of w (in bounds by the layout) and writes
            // only those columns of `out`, which no other block touches.
            unsafe {
                gemm(
                    m,
                    cols,
                    k,
                    dst.0.add(j0),
                    1,
                    n as isize,
                    false,
                    x.as_ptr(),
                    x_cs,
                    x_rs,
                    w.as_ptr().offset(j0 as isize * w_cs),
                    w_cs,
                    w_rs,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                )
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((m, n))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn close(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
    }

    #[test]
    fn equals_candle_matmul_for_plain_and_transposed_weights() {
        let dev = Device::Cpu;
        for (m, k, n) in [(1, 768, 2304), (3, 64, 1000), (8, 32, 17), (1, 5, 1)] {
            let x = Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap();
            let w = Tensor::randn(0f32, 1.0, (k, n), &dev).unwrap();
            assert!(close(&matmul(&x, &w).unwrap(), &x.matmul(&w).unwrap()) < 1e-4, "({m},{k},{n})");
            let wt = Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
            let expected = x.matmul(&wt.t().unwrap()).unwrap();
            assert!(close(&matmul(&x, &wt.t().unwrap()).unwrap(), &expected) < 1e-4, "t ({m},{k},{n})");
        }
    }
}
