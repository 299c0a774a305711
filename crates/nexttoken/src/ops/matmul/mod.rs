//! `x @ W` on the CPU: which kernel runs (`plan`, the one place that decides), the packed weight
//! format (`layout`, `format`, `pack`, `ggml`, `decode`), and the kernels, named by dtype and
//! instruction set.
//!
//! - `plan`: which kernel multiplies a weight by a number of rows; its documentation is the
//!   table. A GPU backend's choice goes there too.
//! - `weight`: a linear layer's weight, packed (`pack::PackedMatrix`, in memory of its own:
//!   `buffer`) or a tensor.
//! - `layout`: how a weight is held (`packs`: packed or an f32 tensor; `order`: bf16 in pairs
//!   or not), where each value of a packed matrix is (panels, blocks, pairs, q8 and q4 lanes),
//!   the register tiles' shape and `LAYOUT_VERSION`; `format`: one type per packed format (`PackedFormat`: block bytes,
//!   encode, decode, reference dot product); `pack` fills matrices from f32 values, `ggml` from
//!   llama.cpp's blocks; `decode` widens blocks back to f32.
//! - `panels`: the driver for packed weights, one loop for every row count around a register
//!   tile: `f32_avx512`, `f32_avx2`, `f32_portable` (fp32 panels, or any dtype's decoded),
//!   `half_avx512` (bf16 and fp16 widened in registers), `bf16_avx512` (AVX-512 BF16's dot
//!   product), `int8_avx512` and `int8_avx2` (q8 and q4 with integer dot products; what they
//!   share, the quantized activations, is `int8`).
//! - `tensor`: f32 tensor weights (fp32 at the portable level), by the streaming kernels of
//!   `gemv` or by gemm.

mod bf16_avx512;
mod buffer;
mod decode;
#[cfg(target_arch = "x86_64")]
mod f32_avx2;
#[cfg(target_arch = "x86_64")]
mod f32_avx512;
mod f32_portable;
mod format;
mod gemv;
mod ggml;
#[cfg(target_arch = "x86_64")]
mod half_avx512;
#[cfg(target_arch = "x86_64")]
mod int8;
#[cfg(target_arch = "x86_64")]
mod int8_avx2;
#[cfg(target_arch = "x86_64")]
mod int8_avx512;
mod layout;
mod pack;
pub mod panels;
mod plan;
pub mod tensor;
mod weight;

pub use buffer::WeightBytes;
pub use layout::{backend, Backend, LAYOUT_VERSION};
pub use pack::{PackError, PackedMatrix};
pub use plan::{fused_kernels, plan, Kernel, Rows, Tile};
pub use weight::Weight;
