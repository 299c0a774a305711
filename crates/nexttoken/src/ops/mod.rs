//! CPU fast paths for the few operations that dominate GPT-2's time, each with the plain candle
//! composition as the fallback on other devices and dtypes (and as the reference in tests).
//!
//! - `linear`: `x @ W + b` with what follows it (`epilogue`: GELU, residual add) fused into one
//!   pass over the output, and both cores busy even for one row (candle's gemm runs
//!   matrix-vector products on one thread). Which kernel multiplies is `matmul::plan`'s to say;
//!   the kernels and the packed weights are in `matmul` (see its documentation).
//! - `attention`: causal attention fused per head and block of queries, masked scores skipped.
//! - `gelu`, `math`: the tanh GELU, a vectorised exponential, and the one reduction helper.
//! - `simd`: which instruction sets this CPU has (`NEXTTOKEN_SIMD` lowers them); the plan reads it.
//!
//! A q8 product, from the network to the instruction (three hops):
//! 1. `Conv1D::forward` (network.rs) calls `linear` (ops/linear.rs), which asks
//!    `matmul::plan(weight, rows)`: a packed q8 weight on a CPU with an integer dot product gets
//!    `Kernel::Panels(Tile::Int8(dot))` (the table in ops/matmul/plan.rs).
//! 2. `linear` runs `panels::matmul` (ops/matmul/panels.rs) with that tile: it quantizes the
//!    activations once (`int8::QuantizedRows`), walks rows, input blocks and pairs of panels, and
//!    calls `run_int8` for each register tile.
//! 3. `run_int8` calls `int8_avx512::run` or `int8_avx2::run` (ops/matmul/int8_avx512.rs,
//!    int8_avx2.rs), whose kernel issues `vpdpbusd` (or `vpmaddubsw` + `vpmaddwd`) on the packed
//!    panel's bytes as `layout` laid them out.

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
pub(crate) mod cuda;
mod epilogue;
mod gelu;
mod kv_write;
mod linear;
mod math;
mod matmul;
pub mod simd;

pub use attention::attention;
pub use epilogue::Epilogue;
pub use kv_write::write_heads;
pub use linear::linear;
pub use math::{max_value, sum_exp};
pub use matmul::{
    backend, fused_kernels, Backend, PackError, PackedMatrix, Weight, WeightBytes, LAYOUT_VERSION,
};

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
