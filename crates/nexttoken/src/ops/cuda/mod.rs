//! The device backend's fused CUDA kernels (`kernels.cu`, built into PTX by build.rs with the
//! `cuda` feature), as candle ops: the KV write of a pass's new rows, the attention of all its
//! decoding sequences over their slots with their lengths, and the bias + GELU and bias +
//! residual epilogues of a product. Each replaces several of candle's launches with one
//! (`network::device` says where). Only CUDA runs them; `plan::fused_kernels` decides whether
//! they run at all.

use candle_core::{CpuStorage, CustomOp3, InplaceOp2, InplaceOp3, Layout, Shape, Tensor};

/// The most keys `decode_attention` scores (in 48 KiB of shared memory, every GPU's default).
pub const MAX_KEYS: usize = 48 * 1024 / 4;

/// Writes the keys and values of a pass's new rows into a slot group's `layer` (rows, 2c): rows
/// `meta[..n]` of `keys_values` (rows, 2c, any row stride: a view of `c_attn`'s output) to rows
/// `meta[n..]`.
pub fn write_kv(layer: &Tensor, keys_values: &Tensor, meta: &Tensor) -> candle_core::Result<()> {
    layer.inplace_op3(keys_values, meta, &KvWrite)
}

/// Attention of n decoding sequences over their slots in `layer` (rows, 2c): the query of
/// sequence i is row `meta[i]` of `q` (rows, c, any row stride), its slot starts at row
/// `meta[n + i]` and it is at position `meta[2n + i]`, the longest seeing `keys` keys (at most
/// `MAX_KEYS`). Returns (n, c).
pub fn decode_attention(
    q: &Tensor,
    layer: &Tensor,
    meta: &Tensor,
    (n_head, keys): (usize, usize),
    scale: f64,
) -> candle_core::Result<Tensor> {
    q.apply_op3_no_bwd(layer, meta, &DecodeAttention { n_head, keys, scale: scale as f32 })
}

/// `y = gelu_tanh(y + bias)` in place, for a contiguous `y` (rows, cols).
pub fn bias_gelu(y: &Tensor, bias: &Tensor) -> candle_core::Result<()> {
    y.inplace_op2(bias, &BiasGelu)
}

/// `y = y + bias + residual` in place, for contiguous `y` and `residual` (rows, cols).
pub fn bias_residual(y: &Tensor, bias: &Tensor, residual: &Tensor) -> candle_core::Result<()> {
    y.inplace_op3(bias, residual, &BiasResidual)
}

struct KvWrite;

// (Read by `cuda_fwd` only, which builds without the `cuda` feature leave out.)
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
struct DecodeAttention {
    n_head: usize,
    keys: usize,
    scale: f32,
}

struct BiasGelu;

struct BiasResidual;

const CUDA_ONLY: &str = "runs on CUDA only";

impl InplaceOp3 for KvWrite {
    fn name(&self) -> &'static str {
        "kv-write"
    }

    fn cpu_fwd(
        &self,
        _: &mut CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<()> {
        candle_core::bail!("kv-write {CUDA_ONLY}")
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        layer: &mut candle_core::CudaStorage,
        layer_l: &Layout,
        keys_values: &candle_core::CudaStorage,
        keys_values_l: &Layout,
        meta: &candle_core::CudaStorage,
        meta_l: &Layout,
    ) -> candle_core::Result<()> {
        launch::kv_write((layer, layer_l), (keys_values, keys_values_l), (meta, meta_l))
    }
}

impl CustomOp3 for DecodeAttention {
    fn name(&self) -> &'static str {
        "decode-attention"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!("decode-attention {CUDA_ONLY}")
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        q: &candle_core::CudaStorage,
        q_l: &Layout,
        layer: &candle_core::CudaStorage,
        layer_l: &Layout,
        meta: &candle_core::CudaStorage,
        meta_l: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let shape = (self.n_head, self.keys, self.scale);
        launch::decode_attention(shape, (q, q_l), (layer, layer_l), (meta, meta_l))
    }
}

impl InplaceOp2 for BiasGelu {
    fn name(&self) -> &'static str {
        "bias-gelu"
    }

    fn cpu_fwd(&self, _: &mut CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> candle_core::Result<()> {
        candle_core::bail!("bias-gelu {CUDA_ONLY}")
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        y: &mut candle_core::CudaStorage,
        y_l: &Layout,
        bias: &candle_core::CudaStorage,
        bias_l: &Layout,
    ) -> candle_core::Result<()> {
        launch::epilogue((y, y_l), (bias, bias_l), None)
    }
}

impl InplaceOp3 for BiasResidual {
    fn name(&self) -> &'static str {
        "bias-residual"
    }

    fn cpu_fwd(
        &self,
        _: &mut CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<()> {
        candle_core::bail!("bias-residual {CUDA_ONLY}")
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        y: &mut candle_core::CudaStorage,
        y_l: &Layout,
        bias: &candle_core::CudaStorage,
        bias_l: &Layout,
        residual: &candle_core::CudaStorage,
        residual_l: &Layout,
    ) -> candle_core::Result<()> {
        launch::epilogue((y, y_l), (bias, bias_l), Some((residual, residual_l)))
    }
}

#[cfg(feature = "cuda")]
mod launch;
