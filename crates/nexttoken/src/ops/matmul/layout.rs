//! The packed layout: weights repacked once, at load, into the form the matrix kernels stream:
//! panels of `PANEL` output columns, each panel cut into blocks of `BLOCK` inputs, each block
//! holding its inputs' weights for the panel's columns in the matrix's dtype. The kernels read
//! every weight in address order whatever the number of rows they multiply.
//!
//! A block is `BLOCK` x `PANEL` values (input-major but for bf16 in pairs, the last panel and
//! block zero-padded):
//! - fp32, fp16: the values, 4 or 2 bytes each;
//! - bf16: the values, 2 bytes each, input by input too, except where AVX-512 BF16's dot product
//!   multiplies them (`layout::order`): then in pairs of inputs, for pair q and column j the 32-bit
//!   element (w[2q][j], w[2q + 1][j]) (low half first), the form `bf16_avx512` reads;
//! - q8 (llama.cpp's Q8_0): the panel's 32 column scales as f16, then the values in the layout
//!   the integer dot products read (`q8_offset`): 8 groups of 4 inputs, each group 32 lanes of
//!   4 bytes, lane j holding inputs 4g..4g + 4 of column j as unsigned bytes (the int8 value with
//!   its sign bit flipped: value + 128). Each column's 32 values in a block are quantized
//!   together, exactly as one Q8_0 block of a row of llama.cpp's (out, in) weight;
//! - q4 (Q4_0): 32 f16 scales, then the values in q8's lanes, two to a byte (`q4_position`):
//!   4 groups of 4 inputs, each group 32 lanes of 4 bytes, lane j of group g holding inputs
//!   4g..4g + 4 of column j in its bytes' low nibbles and inputs 16 + 4g.. in their high nibbles
//!   (llama.cpp's pairing of inputs i and i + 16), as Q4_0 stores them: value + 8, 0 to 15. One
//!   AND of a loaded register gives one group's unsigned bytes, a shift and an AND the other's.
//!
//! A (in, out) Conv1D weight and the transposed token embeddings (the tied output head) pack the
//! same way; the embeddings are read back from the packed head (`PackedMatrix::column`), so the
//! model keeps a single copy of them.
//!
//! This module says where each value is (constants and offsets), the shape of the kernels'
//! register tiles, and how this process holds a weight (`packs`, `order`: decided once, at load,
//! from the CPU; which kernel multiplies it is `plan`'s); `format` writes and reads the values
//! of one block, `pack` and `ggml` fill whole matrices, `decode` widens them back.

use candle_core::Device;

use crate::dtype::WeightDtype;
use crate::ops::simd::{self, Level};

/// Output columns per panel: two 512-bit registers of f32.
pub const PANEL: usize = 32;

/// Inputs per block: llama.cpp's block size for Q8_0 and Q4_0, so blocks of theirs and ours
/// hold the same 32 weights.
pub const BLOCK: usize = 32;

/// Values per block.
pub const BLOCK_VALUES: usize = BLOCK * PANEL;

/// Bytes of the scales that start a quantized block: one f16 per column. q8 scales stay f16 (not
/// widened to f32 at load) so that q8 weights stay 1.06 bytes each: decoding reads every weight
/// once per token and is bound by memory, and the kernels widen 32 scales per 1024 weights.
pub const SCALE_BYTES: usize = PANEL * 2;

/// Consecutive inputs of one column in a 32-bit lane of a q8 block: what `vpdpbusd` (AVX-512
/// VNNI) and `vpmaddubsw` + `vpmaddwd` (AVX2) sum into one 32-bit lane.
pub const Q8_LANE_INPUTS: usize = 4;

/// What q8 values are stored XOR'ed with: int8 + 128, the unsigned operand `vpdpbusd` wants (its
/// other operand, the activations, is signed). The AVX2 kernel flips it back. A lossless bit
/// flip, so llama.cpp's blocks are still moved bit for bit up to it, and never requantized.
pub const Q8_SIGN_FLIP: u8 = 0x80;

/// Where the q8 value of input `i` (< BLOCK) of column `j` is in a block's values: the one
/// place that decides the q8 layout (see the module documentation). It is the integer kernels'
/// operand as it is, so that products of any number of rows read the weights once, with no
/// re-laying per product; the f32 paths (no AVX2) decode it like any other layout.
pub const fn q8_offset(i: usize, j: usize) -> usize {
    (i / Q8_LANE_INPUTS * PANEL + j) * Q8_LANE_INPUTS + i % Q8_LANE_INPUTS
}

/// Inputs apart of the two q4 values that share a byte: input i (< 16) in the low nibble, i + 16
/// in the high one, as in llama.cpp's Q4_0 blocks, so that theirs are moved byte for byte.
pub const Q4_PAIR_DISTANCE: usize = BLOCK / 2;

/// Bits of one q4 value.
pub const NIBBLE_BITS: u32 = 4;

/// Where the q4 value of input `i` (< BLOCK) of column `j` is in a block's values: its byte and
/// the shift of its nibble. The one place that decides the q4 layout (see the module
/// documentation): q8's lanes of 4 inputs (`q8_offset`) for the first 16 inputs, and the last 16
/// in the same bytes' high nibbles, so that the integer kernels take the unsigned values of two
/// groups of lanes from one load with an AND and a shift, and nothing is re-laid per product.
pub const fn q4_position(i: usize, j: usize) -> (usize, u32) {
    (q8_offset(i % Q4_PAIR_DISTANCE, j), NIBBLE_BITS * (i / Q4_PAIR_DISTANCE) as u32)
}

/// bf16 values per 32-bit element of AVX-512 BF16's dot product: two consecutive inputs.
pub const PAIR: usize = 2;

// A pair of inputs never straddles two blocks, so a block in pairs holds whole pairs.
const _: () = assert!(BLOCK.is_multiple_of(PAIR));

/// Index of input `i`, column `j` among a block's 16-bit values in pairs.
pub fn paired_index(i: usize, j: usize) -> usize {
    (i / PAIR * PANEL + j) * PAIR + i % PAIR
}

/// What a stored q4 value is offset by (Q4_0's own: values -8..=7 stored as 0..=15).
pub const Q4_OFFSET: i8 = 8;

/// A stored q8 byte's int8 value.
#[inline(always)]
pub fn q8_value(stored: u8) -> i8 {
    (stored ^ Q8_SIGN_FLIP) as i8
}

/// The q4 value of input `i` of column `j` in a block's `quants`.
#[inline(always)]
pub fn q4_value(quants: &[u8], i: usize, j: usize) -> i8 {
    let (at, shift) = q4_position(i, j);
    ((quants[at] >> shift) & 0xF) as i8 - Q4_OFFSET
}

/// The version of the packed layouts: packed-cache files (`crate::packed_cache`) record it, and
/// a file of another version is packed again. Changing any layout this module describes must
/// bump it, or a file of the old layout would be read as the new one.
pub const LAYOUT_VERSION: u32 = 3; // 2: q4 values in q8's lanes of 4 inputs; 3: bf16 in pairs (`Order`)

/// How a block orders its values (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Input by input: input i's `PANEL` values, then input i + 1's.
    Inputs,
    /// bf16 in pairs of inputs: per pair, each column's two values side by side.
    Pairs,
}

/// Where blocks are in a packed (k, n) matrix of blocks of `block_bytes` each: panel after
/// panel, each panel's blocks in input order.
#[derive(Clone, Copy)]
pub struct Blocks {
    pub block_bytes: usize,
    pub k: usize,
    pub n: usize,
}

impl Blocks {
    /// Blocks per panel: inputs, rounded up to whole blocks.
    pub fn per_panel(&self) -> usize {
        self.k.div_ceil(BLOCK)
    }

    /// Panels: outputs, rounded up to whole panels.
    pub fn panels(&self) -> usize {
        self.n.div_ceil(PANEL)
    }

    /// Bytes of the whole packed matrix.
    pub fn total_bytes(&self) -> usize {
        self.panels() * self.per_panel() * self.block_bytes
    }

    /// Where block `b` (inputs `b * BLOCK ..`) of panel `p` starts.
    pub fn offset(&self, p: usize, b: usize) -> usize {
        debug_assert!(p < self.panels() && b * BLOCK < self.k.max(1));
        (p * self.per_panel() + b) * self.block_bytes
    }
}

/// Rows of a register tile: 6 x 4 accumulators, 4 weight registers and 1 broadcast of the 32.
/// (Tiles of 14 rows by one panel measured the same on prompts and a quarter slower on a batch
/// of 16 decoded tokens.)
pub const MAX_TILE_ROWS: usize = 6;

/// Panels of a register tile (the last one of a range may be alone).
pub const TILE_PANELS: usize = 2;

/// The two ways a model runs, chosen once at load (`backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The CPU's: weights packed for our SIMD kernels (`packs`), the KV cache in host memory
    /// and the fused CPU attention.
    Cpu,
    /// A device's: weights as candle tensors in their own dtype (fp32, bf16, fp16), KV slots
    /// preallocated per layer and attention for all the decoding sequences of a pass in one
    /// call (`network::device`). CUDA and Metal run it; the CPU runs it only when a load asks
    /// (the tests of its tensor code, on machines without a GPU).
    Device,
}

/// The backend a model on `device` runs on: the CPU's on the CPU and the device one elsewhere,
/// unless the load asks for `requested` (only the CPU runs both).
pub fn backend(device: &Device, requested: Option<Backend>) -> Result<Backend, String> {
    match (device.is_cpu(), requested) {
        (true, requested) => Ok(requested.unwrap_or(Backend::Cpu)),
        (false, None | Some(Backend::Device)) => Ok(Backend::Device),
        (false, Some(Backend::Cpu)) => Err("the CPU backend runs on the CPU only".into()),
    }
}

/// True when weights in `dtype` are packed on `backend`, else kept as tensors. fp32 is packed
/// where a SIMD tile multiplies it (AVX2 or AVX-512), so that one kernel takes every row count
/// and a row's bits do not depend on the rows beside it; at the portable level it stays an f32
/// tensor for gemm and `gemv`, and every other dtype exists only packed on the CPU backend. The
/// device backend holds tensors in their own dtype.
pub fn packs(backend: Backend, dtype: WeightDtype) -> bool {
    backend == Backend::Cpu && (dtype != WeightDtype::F32 || simd::level() >= Level::Avx2)
}

/// The order `dtype`'s blocks are packed in by this process. bf16 goes in pairs where its
/// products use AVX-512 BF16's dot product (`simd::bf16_dot`, decided once per process), which
/// multiplies pairs of consecutive inputs: packed so at load, every product reads the panels as
/// they are instead of re-laying them per product; every other dtype, and bf16 on other CPUs
/// (whose kernels widen input by input), go input by input.
pub fn order(dtype: WeightDtype) -> Order {
    match dtype == WeightDtype::Bf16 && simd::bf16_dot() {
        true => Order::Pairs,
        false => Order::Inputs,
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode::scales_f32;
    use super::super::pack::PackedMatrix;
    use super::*;
    use crate::dtype::WeightDtype;

    #[test]
    fn the_cpu_runs_its_own_backend_unless_a_load_asks_for_the_device_one() {
        // (A GPU's refusal of the CPU backend needs a GPU device, which no test here has.)
        assert_eq!(backend(&Device::Cpu, None), Ok(Backend::Cpu));
        assert_eq!(backend(&Device::Cpu, Some(Backend::Device)), Ok(Backend::Device));
        assert!(!packs(Backend::Device, WeightDtype::Q8_0), "the device backend never packs");
        assert!(packs(Backend::Cpu, WeightDtype::Q8_0), "the CPU backend packs every dtype but fp32");
    }

    #[test]
    fn q8_values_are_stored_in_lanes_of_four_inputs_plus_128() {
        // Integers, each column's largest 127: the scale is 1 and each value its own int8.
        let (k, n) = (BLOCK, PANEL);
        let value =
            |i: usize, j: usize| if i == BLOCK - 1 { 127 } else { ((i * 7 + j * 13) % 200) as i32 - 100 };
        let w: Vec<f32> = (0..k * n).map(|v| value(v / n, v % n) as f32).collect();
        let packed = PackedMatrix::from_values(WeightDtype::Q8_0, &w, k, n, false).unwrap();
        let quants = &packed.panel_bytes(0, 0)[SCALE_BYTES..];
        for i in 0..k {
            for j in 0..n {
                // Lanes of 4 consecutive inputs, one per column, each value + 128.
                let at = (i / 4 * PANEL + j) * 4 + i % 4;
                assert_eq!(quants[at] as i32, value(i, j) + 128, "input {i}, column {j}");
            }
        }
        assert_eq!(q8_value(0x80), 0);
        assert_eq!(q8_value(0), -128);
    }

    #[test]
    fn q4_values_are_stored_in_q8_lanes_two_to_a_byte_plus_8() {
        // Integers, each column's largest magnitude -8: the scale is 1 and each value its own.
        let (k, n) = (BLOCK, PANEL);
        let value = |i: usize, j: usize| if i == BLOCK - 1 { -8 } else { ((i * 7 + j * 13) % 16) as i32 - 8 };
        let w: Vec<f32> = (0..k * n).map(|v| value(v / n, v % n) as f32).collect();
        let packed = PackedMatrix::from_values(WeightDtype::Q4_0, &w, k, n, false).unwrap();
        let (scales, quants) = packed.panel_bytes(0, 0).split_at(SCALE_BYTES);
        assert!(scales_f32(scales).iter().all(|&d| d == 1.0));
        for i in 0..k {
            for j in 0..n {
                // q8's lane of 4 inputs for inputs 0..16, the same byte's high nibble 16 later.
                let byte = quants[(i % 16 / 4 * PANEL + j) * 4 + i % 4];
                let nibble = if i < 16 { byte & 15 } else { byte >> 4 };
                assert_eq!(nibble as i32, value(i, j) + 8, "input {i}, column {j}");
            }
        }
    }
}
