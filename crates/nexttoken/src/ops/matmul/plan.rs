//! Which kernel multiplies, decided here and nowhere else: which kernel runs each product
//! (`plan`), from the weight, the number of rows and the instruction sets `simd` detected. Every
//! kernel runs what it is handed. How a weight is held, decided once at load from the CPU
//! (`layout::packs`, `layout::order`), is the layout's: it is what this table reads.
//!
//! The first row that matches wins. Packed weights get `Kernel::Panels(tile)`: the table names
//! the tile. `x` is the activations (with the bias and residual), `L` the level in force
//! (AVX-512, AVX2 or portable). The device backend (`layout::Backend`) holds `Weight::Device`
//! tensors, which candle multiplies on their device; its fused GPU kernels will be chosen here.
//!
//! | weight                | rows             | CPU (`simd`)    | kernel → file                            |
//! |-----------------------|------------------|-----------------|------------------------------------------|
//! | device backend's      | any, fused       | a GPU (CUDA)    | `FusedEpilogue` → candle's, `ops::cuda`  |
//! | device backend's      | any              | any, or a GPU   | `Candle` → candle's (quantized) matmul   |
//! | any, x not f32 on CPU | any              | any             | `Candle` → candle's matmul               |
//! | fp32 tensor           | ≤ 16, streamable | portable        | `Streamed` → `gemv`                      |
//! | fp32 tensor           | more             | portable        | `Gemm` → `tensor`                        |
//! | packed fp32           | any              | L               | `F32(L)` → `f32_{avx512,avx2,portable}`  |
//! | packed bf16 in pairs  | any              | AVX-512 BF16    | `Bf16Dot` → `bf16_avx512`                |
//! | packed q8, q4         | any              | VNNI; AVX2+F16C | `Int8(dot)` → `int8_avx512`; `int8_avx2` |
//! | packed bf16, fp16     | ≤ 6 (a tile)     | AVX-512         | `Widened` → `half_avx512`                |
//! | packed, any other     | any              | L               | `Decoded(L)` → `decode`, `f32_*`         |
//!
//! A weight is packed (`pack`) on the CPU in every dtype but fp32 at the portable level, which
//! stays a tensor for gemm and `gemv`; bf16 is packed in input pairs exactly where its products
//! take `Bf16Dot`. The dtype and the CPU, never the number of rows, choose between the f32,
//! bf16-dot and integer kernels, so a row's numbers are the same bits alone and among any number
//! of rows (batch invariance); the row count only chooses how 16-bit weights are widened (the
//! same sums either way) and, for tensors, gemv or gemm.

use std::sync::OnceLock;

use candle_core::{Device, Tensor};

use super::layout::{Order, MAX_TILE_ROWS};
use super::pack::PackedMatrix;
use super::weight::Weight;
use crate::dtype::WeightDtype;
use crate::ops::cpu_f32;
use crate::ops::simd::{self, Int8Dot, Level};

/// Up to this many rows, an f32 tensor weight is streamed once for all rows (or gemm split by
/// columns, `tensor`); above it gemm's blocking and threading win.
pub const MAX_SPLIT_ROWS: usize = 16;

/// Most rows for which a transposed f32 tensor (the tied head) streams dot products: each ends
/// in a horizontal sum, which dominates once several rows share a weight row.
const MAX_DOT_ROWS: usize = 4;

/// The kernel a product runs (see the module documentation's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// candle's own matmul, then the epilogue as tensor operations.
    Candle,
    /// candle's own matmul (cuBLAS, or its quantized kernels), then bias + GELU or bias +
    /// residual in one fused kernel (`ops::cuda`), where `fused_kernels` says so.
    FusedEpilogue,
    /// An f32 tensor weight read once for all rows by the streaming kernels (`gemv`).
    Streamed,
    /// An f32 tensor weight multiplied by gemm.
    Gemm,
    /// A packed weight, through the panel driver (`panels`) with this register tile.
    Panels(Tile),
}

/// The register tile that multiplies packed panels (`panels`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tile {
    /// f32 panels as they are, at this level.
    F32(Level),
    /// A few rows (one tile: decoding) read 16-bit panels directly, widened in registers
    /// (AVX-512).
    Widened,
    /// Panels decoded to f32 a block at a time, shared by all rows, then the f32 tile at this
    /// level.
    Decoded(Level),
    /// bf16 panels in pairs with AVX-512 BF16's dot product; the activations rounded to bf16.
    Bf16Dot,
    /// q8 or q4 panels with this integer dot product; the activations quantized to int8.
    Int8(Int8Dot),
}

/// What the plan needs of a product's activations.
#[derive(Debug, Clone, Copy)]
pub struct Rows {
    /// How many rows are multiplied.
    pub count: usize,
    /// They (and the bias and residual) are f32 on the CPU: what the CPU kernels take.
    pub cpu_f32: bool,
    /// A row's inputs are adjacent in memory.
    pub contiguous: bool,
    /// They are on a device that runs the fused kernels (`fused_kernels`).
    pub fused: bool,
}

impl Rows {
    /// The rows of `x` (rows, inputs); `cpu_f32` says whether it and the product's other
    /// operands are f32 on the CPU.
    pub fn of(x: &Tensor, cpu_f32: bool) -> Self {
        let count = x.dims().first().copied().unwrap_or(1);
        Rows { count, cpu_f32, contiguous: matches!(x.stride(), [_, 1]), fused: fused_kernels(x.device()) }
    }
}

/// The kernel for `rows` times `weight` (see the module documentation's table).
pub fn plan(weight: &Weight, rows: Rows) -> Kernel {
    match weight {
        Weight::Packed(w) if rows.cpu_f32 => Kernel::Panels(tile(w, rows.count)),
        Weight::Tensor(w) if rows.cpu_f32 && cpu_f32(&[w]) => tensor_kernel(w, rows),
        Weight::Device(_) | Weight::Quantized(_) if rows.fused => Kernel::FusedEpilogue,
        // The device backend's weights, and operands that are not f32: candle's own matmul. The
        // fused GPU kernels' choice goes here, as a `Kernel` of its own chosen from the device,
        // the weight's dtype and the row count, as the CPU's are above.
        Weight::Device(_) | Weight::Quantized(_) | Weight::Tensor(_) | Weight::Packed(_) => Kernel::Candle,
    }
}

/// Asks for the fused kernels on CUDA (`fused_kernels`).
pub const FUSED_OVERRIDE: &str = "NEXTTOKEN_FUSED_CUDA";

/// Whether the device backend runs its fused CUDA kernels (`ops::cuda`: the KV write, decode
/// attention, bias + GELU and bias + residual) on `device`: a build with the `cuda` feature, a
/// CUDA device, and, until a run on a GPU has checked them against candle's operations
/// (scripts/gpu-check.sh), only when `NEXTTOKEN_FUSED_CUDA=1` asks. Decided once per process.
pub fn fused_kernels(device: &Device) -> bool {
    static ASKED: OnceLock<bool> = OnceLock::new();
    cfg!(feature = "cuda")
        && device.is_cuda()
        && *ASKED.get_or_init(|| std::env::var(FUSED_OVERRIDE).is_ok_and(|value| value == "1"))
}

/// The tile for `rows` times the packed `w`.
pub fn tile(w: &PackedMatrix, rows: usize) -> Tile {
    let level = simd::level();
    if w.dtype() == WeightDtype::F32 {
        return Tile::F32(level);
    }
    // Before the row count: one row and a thousand are summed the same way.
    if w.order() == Order::Pairs {
        return Tile::Bf16Dot;
    }
    // Likewise q8 and q4 rows take integer products however many they are.
    let quantized = w.dtype().is_quantized();
    if let Some(dot) = simd::int8_dot().filter(|_| quantized) {
        return Tile::Int8(dot);
    }
    // (Quantized weights without integer products are only the portable level in practice,
    // as every AVX-512 CPU has AVX2: `half_avx512` reads 16-bit layouts alone.)
    if level >= Level::Avx512 && rows <= MAX_TILE_ROWS && !quantized {
        return Tile::Widened;
    }
    Tile::Decoded(level)
}

/// `Streamed` or `Gemm` for `rows` times the f32 tensor `w` (k, n): streaming reads (in, out)
/// weights row by row for up to `MAX_SPLIT_ROWS` rows, a transposed (out, in) one (the tied head)
/// by dot products for up to `MAX_DOT_ROWS`, past which it is a true GEMM for gemm.
fn tensor_kernel(w: &Tensor, rows: Rows) -> Kernel {
    let [row_stride, col_stride] = *w.stride() else { return Kernel::Gemm };
    let streams = rows.contiguous && (col_stride == 1 || (row_stride == 1 && rows.count <= MAX_DOT_ROWS));
    match rows.count <= MAX_SPLIT_ROWS && streams {
        true => Kernel::Streamed,
        false => Kernel::Gemm,
    }
}
