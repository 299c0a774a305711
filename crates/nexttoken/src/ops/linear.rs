//! `x @ W + b` on the CPU, with what follows it in GPT-2 fused into the same pass over the output
//! (the epilogue): the tanh GELU after `c_fc`, the residual add after each `c_proj`.
//!
//! A packed weight (CPUs with AVX-512) goes to `panel_matmul` whatever the number of rows. A
//! tensor weight takes one of two paths. A few rows (decoding one token per sequence: up to 16
//! for an (in, out) weight, up to 4 for the transposed tied head) go to the streaming kernels of
//! `gemv`, which read each weight once for all rows with every core on its own block of output
//! columns: decoding is bound by reading the weights, and one core cannot pull DRAM's bandwidth
//! alone. Everything else goes to gemm: split by columns across threads for few rows (gemm would
//! run them on one thread), gemm's own threading for many (prompts).

use std::borrow::Cow;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Storage, Tensor};
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use super::packed::PackedMatrix;
use super::weight::Weight;
use super::{cpu_f32, gelu, gemv, panel_matmul, SharedOut, View};

/// Up to this many rows, stream the weights once for all rows (or split gemm by columns); above
/// it gemm's blocking and threading win.
const MAX_SPLIT_ROWS: usize = 16;

/// Columns per block are a multiple of this, so blocks start on whole SIMD registers and lines.
const COLUMN_ALIGN: usize = 16;

/// Most rows for which the transposed case (the tied head) streams dot products.
const MAX_DOT_ROWS: usize = 4;

/// Output rows per task in the transposed case: small enough to balance the threads.
const DOT_ROWS_PER_TASK: usize = 1024;

/// Rows per task of the epilogue after a gemm: a few hundred KB of output each.
const EPILOGUE_ROWS: usize = 32;

thread_local! {
    /// A task's block of outputs in the streaming path, reused by every task on this thread.
    static BLOCK: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// What is applied to each output after the product and the bias.
#[derive(Clone, Copy)]
pub enum Epilogue<'a> {
    None,
    /// GPT-2's tanh GELU (`gelu_new`).
    Gelu,
    /// Adds this (m, n) tensor: the residual stream.
    Residual(&'a Tensor),
}

/// `epilogue(x (m, k) @ w (k, n) [+ bias (n)])` for a 2-D `x`.
pub fn linear(
    x: &Tensor,
    w: &Weight,
    bias: Option<&Tensor>,
    epilogue: Epilogue,
) -> candle_core::Result<Tensor> {
    let fused = cpu_f32(&[x])
        && bias.is_none_or(|b| cpu_f32(&[b]))
        && match epilogue {
            Epilogue::Residual(r) => cpu_f32(&[r]) && r.is_contiguous(),
            _ => true,
        };
    let w = match w {
        Weight::Packed(_) if !fused => candle_core::bail!("linear: a packed weight takes f32 CPU operands"),
        Weight::Packed(packed) => {
            let op = PackedLinear { w: packed, epilogue };
            let x = if x.stride()[1] == 1 { x.clone() } else { x.contiguous()? };
            return match bias {
                Some(b) => x.apply_op2_no_bwd(b, &op),
                None => x.apply_op1_no_bwd(&op),
            };
        }
        Weight::Tensor(w) => w,
    };
    let op = Linear { epilogue };
    match bias {
        Some(b) if fused && cpu_f32(&[w]) => x.apply_op3_no_bwd(w, b, &op),
        None if fused && cpu_f32(&[w]) => x.apply_op2_no_bwd(w, &op),
        _ => {
            let y = x.matmul(w)?;
            let y = match bias {
                Some(b) => y.broadcast_add(b)?,
                None => y,
            };
            match epilogue {
                Epilogue::None => Ok(y),
                Epilogue::Gelu => y.gelu(),
                Epilogue::Residual(r) => y + r,
            }
        }
    }
}

/// `x @ w` for a tensor `w`: the streaming kernels or gemm.
struct Linear<'a> {
    epilogue: Epilogue<'a>,
}

/// `x @ w` for a packed `w`: the AVX-512 panel kernel.
struct PackedLinear<'a> {
    w: &'a PackedMatrix,
    epilogue: Epilogue<'a>,
}

/// The epilogue with its operands as slices, ready to run on any rows.
struct Finish<'a> {
    bias: Option<Cow<'a, [f32]>>,
    gelu: bool,
    residual: Option<&'a [f32]>,
    n: usize,
}

impl Finish<'_> {
    /// Finishes `out`, columns `j0..` of row `row` (as many as `out` holds).
    fn apply(&self, row: usize, j0: usize, out: &mut [f32]) {
        if let Some(bias) = &self.bias {
            out.iter_mut().zip(&bias[j0..]).for_each(|(o, b)| *o += b);
        }
        if self.gelu {
            gelu::gelu_in_place(out);
        }
        if let Some(residual) = self.residual {
            out.iter_mut().zip(&residual[row * self.n + j0..]).for_each(|(o, r)| *o += r);
        }
    }

    fn is_noop(&self) -> bool {
        self.bias.is_none() && !self.gelu && self.residual.is_none()
    }
}

fn f32_view<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<(&'a [f32], View)> {
    let CpuStorage::F32(data) = storage else { candle_core::bail!("linear takes f32 tensors") };
    let data = &data[layout.start_offset()..];
    let stride = layout.stride();
    let (row_stride, col_stride) = match stride.len() {
        1 => (0, stride[0]),
        2 => (stride[0], stride[1]),
        rank => candle_core::bail!("linear takes 1-D or 2-D tensors, not rank {rank}"),
    };
    Ok((data, View { ptr: data.as_ptr(), row_stride, col_stride }))
}

/// Runs `product` with the epilogue of an (m, n) output as slices: the bias (contiguous) and the
/// residual's storage, borrowed for the duration.
fn with_finish<R>(
    bias: Option<(&CpuStorage, &Layout)>,
    epilogue: Epilogue,
    (m, n): (usize, usize),
    product: impl FnOnce(&Finish) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    let bias = match bias {
        Some((storage, layout)) => {
            if layout.shape().dims() != [n] {
                candle_core::bail!("linear: bias {:?} for {n} outputs", layout.shape());
            }
            let (b, bv) = f32_view(storage, layout)?;
            Some(match bv.col_stride {
                1 => Cow::Borrowed(&b[..n]),
                stride => Cow::Owned((0..n).map(|j| b[j * stride]).collect()),
            })
        }
        None => None,
    };
    let residual_storage = match epilogue {
        Epilogue::Residual(r) if r.dims() != [m, n] => {
            candle_core::bail!("linear: residual {:?} for ({m}, {n}) outputs", r.shape())
        }
        Epilogue::Residual(r) => Some(r.storage_and_layout()),
        _ => None,
    };
    let residual = match &residual_storage {
        Some((storage, layout)) => match &**storage {
            Storage::Cpu(cpu) => Some(super::contiguous_f32(cpu, layout, "linear residual")?),
            _ => candle_core::bail!("linear: the residual is not on the CPU"),
        },
        None => None,
    };
    product(&Finish { bias, gelu: matches!(epilogue, Epilogue::Gelu), residual, n })
}

fn run(
    x: (&CpuStorage, &Layout),
    w: (&CpuStorage, &Layout),
    bias: Option<(&CpuStorage, &Layout)>,
    epilogue: Epilogue,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let ((m, k), (k2, n)) = (x.1.shape().dims2()?, w.1.shape().dims2()?);
    if k != k2 {
        candle_core::bail!("linear: ({m}, {k}) @ ({k2}, {n})");
    }
    let (x_data, xv) = f32_view(x.0, x.1)?;
    let (w_data, wv) = f32_view(w.0, w.1)?;
    let mut out = vec![0f32; m * n];
    with_finish(bias, epilogue, (m, n), |finish| {
        let threads = rayon::current_num_threads().max(1);
        // Dot products end in a horizontal sum each, which dominates once several rows share a
        // weight row: past MAX_DOT_ROWS rows the transposed case is a true GEMM for gemm.
        let streams = xv.col_stride == 1 && (wv.col_stride == 1 || (wv.row_stride == 1 && m <= MAX_DOT_ROWS));
        if m <= MAX_SPLIT_ROWS && streams {
            streamed(x_data, xv, w_data, wv, (m, k, n), threads, finish, &mut out);
        } else {
            with_gemm(xv, wv, (m, k, n), threads, &mut out);
            if !finish.is_noop() {
                out.par_chunks_mut(EPILOGUE_ROWS * n).enumerate().for_each(|(chunk, rows)| {
                    for (i, row) in rows.chunks_mut(n).enumerate() {
                        finish.apply(chunk * EPILOGUE_ROWS + i, 0, row);
                    }
                });
            }
        }
        Ok(())
    })?;
    Ok((CpuStorage::F32(out), Shape::from((m, n))))
}

fn run_packed(
    x: (&CpuStorage, &Layout),
    w: &PackedMatrix,
    bias: Option<(&CpuStorage, &Layout)>,
    epilogue: Epilogue,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let (m, k) = x.1.shape().dims2()?;
    if k != w.k() {
        candle_core::bail!("linear: ({m}, {k}) @ ({}, {})", w.k(), w.n());
    }
    let (x_data, xv) = f32_view(x.0, x.1)?;
    if xv.col_stride != 1 {
        candle_core::bail!("linear: a packed weight needs contiguous input rows");
    }
    let n = w.n();
    let mut out = vec![0f32; m * n];
    with_finish(bias, epilogue, (m, n), |finish| {
        panel_matmul::matmul(x_data, xv.row_stride, m, w, &mut out, &|row, col, values| {
            finish.apply(row, col, values)
        });
        Ok(())
    })?;
    Ok((CpuStorage::F32(out), Shape::from((m, n))))
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

impl CustomOp1 for PackedLinear<'_> {
    fn name(&self) -> &'static str {
        "linear-packed"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        run_packed((s1, l1), self.w, None, self.epilogue)
    }
}

impl CustomOp2 for PackedLinear<'_> {
    fn name(&self) -> &'static str {
        "linear-packed"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        run_packed((s1, l1), self.w, Some((s2, l2)), self.epilogue)
    }
}

impl CustomOp2 for Linear<'_> {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        run((s1, l1), (s2, l2), None, self.epilogue)
    }
}

impl CustomOp3 for Linear<'_> {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        run((s1, l1), (s2, l2), Some((s3, l3)), self.epilogue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Largest difference relative to the largest value: sums of k products in another order
    /// differ by a few ulps of their magnitude.
    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        let scale = b.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1.0);
        diff / scale
    }

    /// Every path for `w` stored (rows, cols): the tensor paths (streaming for few rows, gemm
    /// for many) and the packed kernel (fp32: exact products to compare).
    fn weights(w: &Tensor, transposed: bool) -> Vec<Weight> {
        let values = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (rows, cols) = w.dims2().unwrap();
        let (k, n) = if transposed { (cols, rows) } else { (rows, cols) };
        let packed =
            PackedMatrix::from_values(crate::dtype::WeightDtype::F32, &values, k, n, transposed).unwrap();
        vec![Weight::tensor(w.clone(), transposed).unwrap(), Weight::Packed(packed)]
    }

    #[test]
    fn equals_candle_for_any_rows_plain_or_transposed_with_or_without_bias() {
        let dev = Device::Cpu;
        for (m, k, n) in [(1, 768, 2304), (3, 64, 1000), (8, 32, 17), (1, 5, 1), (40, 96, 130)] {
            let x = Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap();
            let w = Tensor::randn(0f32, 1.0, (k, n), &dev).unwrap();
            let b = Tensor::randn(0f32, 1.0, n, &dev).unwrap();
            let plain = x.matmul(&w).unwrap();
            let biased = plain.broadcast_add(&b).unwrap();
            for weight in weights(&w, false) {
                let ours = linear(&x, &weight, None, Epilogue::None).unwrap();
                assert!(max_diff(&ours, &plain) < 1e-5, "({m},{k},{n})");
                let ours = linear(&x, &weight, Some(&b), Epilogue::None).unwrap();
                assert!(max_diff(&ours, &biased) < 1e-5, "bias ({m},{k},{n})");
            }
            let wt = Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
            let expected = x.matmul(&wt.t().unwrap()).unwrap();
            for weight in weights(&wt, true) {
                let ours = linear(&x, &weight, None, Epilogue::None).unwrap();
                assert!(max_diff(&ours, &expected) < 1e-5, "t ({m},{k},{n})");
            }
        }
    }

    #[test]
    fn fuses_gelu_and_the_residual_add_on_every_path() {
        let dev = Device::Cpu;
        for (m, k, n) in [(1, 64, 300), (5, 32, 70), (40, 96, 130)] {
            let x = Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap();
            let w = Tensor::randn(0f32, 0.2, (k, n), &dev).unwrap();
            let b = Tensor::randn(0f32, 1.0, n, &dev).unwrap();
            let r = Tensor::randn(0f32, 1.0, (m, n), &dev).unwrap();
            let biased = x.matmul(&w).unwrap().broadcast_add(&b).unwrap();
            for weight in weights(&w, false) {
                let ours = linear(&x, &weight, Some(&b), Epilogue::Gelu).unwrap();
                assert!(max_diff(&ours, &biased.gelu().unwrap()) < 1e-5, "gelu ({m},{k},{n})");
                let ours = linear(&x, &weight, Some(&b), Epilogue::Residual(&r)).unwrap();
                assert!(max_diff(&ours, &(&biased + &r).unwrap()) < 1e-5, "residual ({m},{k},{n})");
            }
        }
    }

    #[test]
    fn a_head_gives_back_its_embedding_rows_packed_or_not() {
        let wte = Tensor::randn(0f32, 1.0, (70, 24), &Device::Cpu).unwrap();
        let ids = [0u32, 69, 33, 33];
        let expected = wte.index_select(&Tensor::new(&ids, &Device::Cpu).unwrap(), 0).unwrap();
        for head in weights(&wte, true) {
            assert_eq!(max_diff(&head.transposed_rows(&ids, &Device::Cpu).unwrap(), &expected), 0.0);
        }
    }
}
