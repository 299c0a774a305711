//! A linear layer's weight in the form the fastest path on this machine reads (`layout::packs`
//! decides which): packed into panels (`pack`) on the CPU backend, in any dtype, for the panel
//! driver; else the f32 tensor itself for gemm and the streaming kernels (fp32 at the portable
//! level: CPUs without AVX2, other architectures, `NEXTTOKEN_SIMD=portable`); on the device
//! backend a tensor in its own dtype for candle's matmul.

use candle_core::quantized::QMatMul;
use candle_core::{Device, Module, Tensor};

use super::layout::{self, Backend};
use super::pack::PackedMatrix;
use crate::dtype::WeightDtype;

pub enum Weight {
    /// An f32 tensor for the CPU's kernels: (k, n), possibly a transposed view.
    Tensor(Tensor),
    Packed(PackedMatrix),
    /// The device backend's: a tensor in its own dtype, (k, n), possibly a transposed view, for
    /// candle's matmul on whatever device holds it.
    Device(Tensor),
    /// The device backend's q8 and q4: candle's quantized matrix, held (n, k), for its quantized
    /// kernels (llama.cpp's, on CUDA and Metal).
    Quantized(QMatMul),
}

impl Weight {
    /// True when weights in `dtype` are packed on `backend`, else kept as tensors: the plan's
    /// answer (`layout::packs`).
    pub fn packs(backend: Backend, dtype: WeightDtype) -> bool {
        layout::packs(backend, dtype)
    }

    /// The same weight kept as a tensor (a transposed view when `transposed`).
    pub fn tensor(w: Tensor, transposed: bool) -> candle_core::Result<Self> {
        Ok(Weight::Tensor(if transposed { w.t()? } else { w }))
    }

    /// The device backend's weight (a transposed view when `transposed`).
    pub fn device(w: Tensor, transposed: bool) -> candle_core::Result<Self> {
        Ok(Weight::Device(if transposed { w.t()? } else { w }))
    }

    /// `x @ w` by candle's own (or quantized) matmul: the plan's `Kernel::Candle`.
    pub fn candle_product(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Weight::Tensor(w) | Weight::Device(w) => x.matmul(w),
            Weight::Quantized(w) => w.forward(x),
            Weight::Packed(_) => candle_core::bail!("linear: a packed weight takes f32 CPU operands"),
        }
    }

    /// Rows `ids` (u32, on the weight's device) of the matrix a `transposed` tensor weight was
    /// made from: (ids, in). The device backend's embedding lookup, which reads its ids from
    /// the pass's one upload.
    pub fn transposed_rows_of(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Weight::Tensor(wt) | Weight::Device(wt) => wt.t()?.index_select(ids, 0),
            Weight::Quantized(w) => w.embedding(ids),
            Weight::Packed(_) => candle_core::bail!("transposed_rows_of: a packed weight has no tensor rows"),
        }
    }

    /// Rows `ids` of the matrix a `transposed` weight was made from: (ids, in).
    pub fn transposed_rows(&self, ids: &[u32], device: &Device) -> candle_core::Result<Tensor> {
        match self {
            Weight::Tensor(wt) | Weight::Device(wt) => wt.t()?.index_select(&Tensor::new(ids, device)?, 0),
            Weight::Quantized(w) => w.embedding(&Tensor::new(ids, device)?),
            Weight::Packed(packed) => {
                let values = ids.iter().flat_map(|&id| packed.column(id as usize)).collect();
                Tensor::from_vec(values, (ids.len(), packed.k()), device)
            }
        }
    }
}
