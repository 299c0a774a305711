//! CPU fast paths for the few operations that dominate GPT-2's time, each with the plain candle
//! composition as the fallback on other devices and dtypes (and as the reference in tests).
//!
//! - `linear`: `x @ W + b` with what follows it (`epilogue`: GELU, residual add) fused into one
//!   pass over the output, and both cores busy even for one row (candle's gemm runs
//!   matrix-vector products on one thread). Weights are packed at load (`weight`, `packed`, in
//!   memory of their own: `buffer`) in their dtype for one register-tiled kernel
//!   (`panel_matmul`, with `direct_tile` reading 16-bit panels while decoding, `bf16_tile`
//!   multiplying any number of rows by bf16 panels (packed in input pairs) with AVX-512 BF16's
//!   dot product and `int8_tile` multiplying by q8 and q4 panels, any number of rows, with
//!   integer dot products);
//!   `f32_avx2_tile` is the f32 tile on CPUs without AVX-512. fp32 weights at the portable level
//!   (no AVX2) stay tensors for gemm and the streaming kernels of `gemv` (`tensor_product`).
//! - `attention`: causal attention fused per head and block of queries, masked scores skipped.
//! - `gelu`, `math`: the tanh GELU, a vectorised exponential, and the one reduction helper.
//! - `simd`: which instruction set the kernels use (`NEXTTOKEN_SIMD` lowers it).

/// Defines `$name`, which runs `$body` (an `#[inline(always)]` fn) compiled for AVX-512 or
/// AVX2+FMA when the CPU has them (`simd::level()`, chosen at run time: builds never assume a
/// CPU), and portable code otherwise. The body is written so the compiler vectorises it for the
/// chosen width.
macro_rules! simd_dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $body:ident) => {
        simd_dispatch! { $(#[$meta])* $vis fn $name($($arg: $ty),*) -> () => $body }
    };
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty => $body:ident) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                /// # Safety
                /// The CPU must have AVX-512F.
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                /// # Safety
                /// The CPU must have AVX2 and FMA.
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                let level = $crate::ops::simd::level();
                if level >= $crate::ops::simd::Level::Avx512 {
                    // SAFETY: the CPU supports the enabled feature (`simd::level` detected it).
                    return unsafe { avx512($($arg),*) };
                }
                if level >= $crate::ops::simd::Level::Avx2 {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

mod attention;
mod bf16_tile;
mod buffer;
#[cfg(target_arch = "x86_64")]
mod direct_tile;
mod epilogue;
#[cfg(target_arch = "x86_64")]
mod f32_avx2_tile;
mod gelu;
mod gemv;
#[cfg(target_arch = "x86_64")]
mod int8_tile;
mod kv_write;
mod linear;
mod math;
mod packed;
mod panel_matmul;
pub mod simd;
mod tensor_product;
mod weight;

pub use attention::attention;
pub use buffer::WeightBytes;
pub use kv_write::write_heads;
pub use linear::{linear, Epilogue};
pub use math::{max_value, sum_exp};
pub use packed::{PackError, PackedMatrix, LAYOUT_VERSION};
pub use weight::Weight;

use candle_core::{CpuStorage, DType, Layout, Tensor};

/// An output buffer written by several threads at once, each in its own disjoint part (the
/// callers' safety argument); the pointer alone may not cross threads.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: only a pointer; every user writes a part no other thread touches (see above).
unsafe impl Send for SharedOut {}
// SAFETY: as above.
unsafe impl Sync for SharedOut {}

/// A read-only matrix view into a tensor's storage: element (0, 0) and the row and column
/// strides, in elements. The kernels' one strided view (linear's operands, attention's heads).
#[derive(Clone, Copy)]
struct View {
    ptr: *const f32,
    row_stride: usize,
    col_stride: usize,
}

// SAFETY: a read-only view of a tensor's storage that outlives the tasks sharing it.
unsafe impl Send for View {}
// SAFETY: as above: no one writes through it.
unsafe impl Sync for View {}

/// True when the CPU fast path applies to these tensors.
fn cpu_f32(tensors: &[&Tensor]) -> bool {
    tensors.iter().all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

/// The f32 values of a contiguous CPU tensor, as a custom op receives it.
fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else { candle_core::bail!("{op} takes f32 tensors") };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op} takes a contiguous tensor")
    };
    Ok(&data[start..end])
}
