//! `x @ W + b` with its epilogue (`epilogue`): asks the plan (`matmul::plan`) which kernel
//! multiplies, and runs it as candle's custom ops: a packed weight through the panel driver
//! (`matmul::panels`) with the plan's tile, an f32 tensor weight through the streaming kernels
//! or gemm (`matmul::tensor`), the device backend's weights (and other operands than f32 on the
//! CPU) through candle's own matmul.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor};

use super::epilogue::{f32_view, with_finish, Epilogue};
use super::matmul::{panels, plan, tensor, Kernel, PackedMatrix, Rows, Tile, Weight};
use super::{cpu_f32, cuda};

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
    let rows = Rows::of(x, fused);
    match (plan(w, rows), w) {
        (Kernel::Panels(tile), Weight::Packed(packed)) => {
            let op = PackedLinear { w: packed, tile, epilogue };
            let x = if rows.contiguous { x.clone() } else { x.contiguous()? };
            match bias {
                Some(b) => x.apply_op2_no_bwd(b, &op),
                None => x.apply_op1_no_bwd(&op),
            }
        }
        (kernel @ (Kernel::Streamed | Kernel::Gemm), Weight::Tensor(w)) => {
            let op = Linear { streams: kernel == Kernel::Streamed, epilogue };
            match bias {
                Some(b) => x.apply_op3_no_bwd(w, b, &op),
                None => x.apply_op2_no_bwd(w, &op),
            }
        }
        (Kernel::FusedEpilogue, w) if bias.is_some() && !matches!(epilogue, Epilogue::None) => {
            let y = w.candle_product(x)?; // a tensor of its own, contiguous
            let bias = bias.expect("matched");
            match epilogue {
                Epilogue::Gelu => cuda::bias_gelu(&y, bias)?,
                Epilogue::Residual(r) => cuda::bias_residual(&y, bias, &r.contiguous()?)?,
                Epilogue::None => unreachable!("matched"),
            }
            Ok(y)
        }
        (_, w) => {
            let y = w.candle_product(x)?;
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

/// `x @ w` for a tensor `w`: the streaming kernels (`streams`) or gemm.
struct Linear<'a> {
    streams: bool,
    epilogue: Epilogue<'a>,
}

/// `x @ w` for a packed `w` with the register tile `tile`.
struct PackedLinear<'a> {
    w: &'a PackedMatrix,
    tile: Tile,
    epilogue: Epilogue<'a>,
}

fn run(
    x: (&CpuStorage, &Layout),
    w: (&CpuStorage, &Layout),
    bias: Option<(&CpuStorage, &Layout)>,
    streams: bool,
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
        tensor::product((x_data, xv), (w_data, wv), (m, k, n), streams, finish, &mut out);
        Ok(())
    })?;
    Ok((CpuStorage::F32(out), Shape::from((m, n))))
}

fn run_packed(
    x: (&CpuStorage, &Layout),
    w: &PackedMatrix,
    tile: Tile,
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
        panels::matmul(x_data, xv.row_stride, m, w, tile, &mut out, &|row, col, values| {
            finish.apply(row, col, values)
        });
        Ok(())
    })?;
    Ok((CpuStorage::F32(out), Shape::from((m, n))))
}

impl CustomOp1 for PackedLinear<'_> {
    fn name(&self) -> &'static str {
        "linear-packed"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        run_packed((s1, l1), self.w, self.tile, None, self.epilogue)
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
        run_packed((s1, l1), self.w, self.tile, Some((s2, l2)), self.epilogue)
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
        run((s1, l1), (s2, l2), None, self.streams, self.epilogue)
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
        run((s1, l1), (s2, l2), Some((s3, l3)), self.streams, self.epilogue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Largest difference relative to the largest value: sums of k products in another order
    /// differ by a few ulps of their magnitude. A NaN or an unmatched infinity on either side
    /// gives infinity (the shared `max_abs_diff`).
    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        let values = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (a, b) = (values(a), values(b));
        let scale = b.iter().fold(1f32, |m, x| m.max(x.abs()));
        crate::ops::simd::test_common::max_abs_diff(&a, &b) / scale
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
