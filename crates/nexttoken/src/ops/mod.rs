//! CPU fast paths for the few operations that dominate GPT-2's time, each with the plain candle
//! composition as the fallback on other devices and dtypes (and as the reference in tests).
//!
//! - `linear`: `x @ W + b` with the bias fused into the matrix product, and both cores busy even
//!   for one row (candle's gemm runs matrix-vector products on one thread).
//! - `causal_softmax`: the attention mask and the softmax in one pass, skipping masked entries.
//! - `decode_attention`: one query over the KV cache, one head per thread.
//! - `gelu`: the tanh GELU spread over threads (candle's runs on one).

mod causal_softmax;
mod decode_attention;
mod gelu;
mod gemv;
mod linear;

pub use causal_softmax::causal_softmax;
pub use decode_attention::decode_attention;
pub use gelu::gelu;
pub use linear::linear;

use candle_core::{DType, Tensor};

/// True when the CPU fast path applies to these tensors.
fn cpu_f32(tensors: &[&Tensor]) -> bool {
    tensors.iter().all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}
