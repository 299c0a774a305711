//! One type per packed format, each the one place that writes and reads a block of it
//! (`PackedFormat`: its size in bytes, encode, decode, a column, the reference dot product), in
//! the spirit of candle's `GgmlType`. Where each value sits in a block is `layout`'s; whole
//! matrices are `pack`'s and `ggml`'s; the vectorised block decoders are `decode`'s.

use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
use half::{bf16, f16};

use super::decode::{self, as_u16s, scales_f32};
use super::layout::{
    paired_index, q4_position, q4_value, q8_offset, q8_value, Order, BLOCK_VALUES, NIBBLE_BITS, PANEL,
    Q4_PAIR_DISTANCE, Q8_SIGN_FLIP, SCALE_BYTES,
};
use crate::dtype::WeightDtype;

/// A packed format: how one block (`BLOCK` inputs of a panel's `PANEL` columns) is held.
pub trait PackedFormat {
    /// Bytes of one block.
    const BLOCK_BYTES: usize;

    /// Writes `block` (`BLOCK_VALUES` f32, input-major) into `dst`; fails with the first value
    /// the format cannot hold.
    fn encode(block: &[f32], dst: &mut [u8]) -> Result<(), f32>;

    /// Reads the block `src` into `out` (up to `BLOCK_VALUES` f32, input-major: a shorter `out`
    /// takes the block's first inputs).
    fn decode(src: &[u8], out: &mut [f32]);

    /// Column `col` of the block `src` into `out` (its first `out.len()` inputs): one token's
    /// embedding is read per block this way, not the block's 1024 values.
    fn decode_column(src: &[u8], col: usize, out: &mut [f32]);

    /// The reference dot product the kernels are tested against: `x` (the block's first
    /// `x.len()` inputs) times column `col` of the block `src`, summed in f32 in input order.
    #[cfg(test)]
    fn dot(src: &[u8], col: usize, x: &[f32]) -> f32 {
        let mut column = [0f32; super::layout::BLOCK];
        Self::decode_column(src, col, &mut column[..x.len()]);
        x.iter().zip(column).map(|(x, w)| x * w).sum()
    }
}

/// fp32: the values, 4 bytes each, input by input.
pub struct F32;
/// bf16 input by input: the values, 2 bytes each (CPUs without AVX-512 BF16).
pub struct Bf16;
/// bf16 in pairs of inputs (`Order::Pairs`), as AVX-512 BF16's dot product reads them.
pub struct Bf16Pairs;
/// fp16: the values, 2 bytes each, input by input.
pub struct F16;
/// q8 (llama.cpp's Q8_0): f16 column scales, then int8 + 128 in lanes of 4 inputs.
pub struct Q8;
/// q4 (llama.cpp's Q4_0): f16 column scales, then value + 8 in q8's lanes, two to a byte.
pub struct Q4;

/// Runs `$body` with `$F` the format of `$dtype` packed in `$order` (only bf16 comes in pairs).
macro_rules! with_format {
    ($dtype:expr, $order:expr, $F:ident => $body:expr) => {
        match ($dtype, $order) {
            (WeightDtype::F32, _) => {
                type $F = F32;
                $body
            }
            (WeightDtype::Bf16, Order::Inputs) => {
                type $F = Bf16;
                $body
            }
            (WeightDtype::Bf16, Order::Pairs) => {
                type $F = Bf16Pairs;
                $body
            }
            (WeightDtype::F16, _) => {
                type $F = F16;
                $body
            }
            (WeightDtype::Q8_0, _) => {
                type $F = Q8;
                $body
            }
            (WeightDtype::Q4_0, _) => {
                type $F = Q4;
                $body
            }
        }
    };
}

/// Bytes of one block in `dtype` (the same in either order).
pub fn block_bytes(dtype: WeightDtype) -> usize {
    with_format!(dtype, Order::Inputs, F => F::BLOCK_BYTES)
}

/// `PackedFormat::encode` for `dtype` in `order`.
pub fn encode(dtype: WeightDtype, order: Order, block: &[f32], dst: &mut [u8]) -> Result<(), f32> {
    with_format!(dtype, order, F => F::encode(block, dst))
}

/// `PackedFormat::decode` for `dtype` in `order`.
pub fn decode(dtype: WeightDtype, order: Order, src: &[u8], out: &mut [f32]) {
    with_format!(dtype, order, F => F::decode(src, out))
}

/// `PackedFormat::decode_column` for `dtype` in `order`.
pub fn decode_column(dtype: WeightDtype, order: Order, src: &[u8], col: usize, out: &mut [f32]) {
    with_format!(dtype, order, F => F::decode_column(src, col, out))
}

/// `PackedFormat::dot` for `dtype` in `order`.
#[cfg(test)]
pub fn dot(dtype: WeightDtype, order: Order, src: &[u8], col: usize, x: &[f32]) -> f32 {
    with_format!(dtype, order, F => F::dot(src, col, x))
}

impl PackedFormat for F32 {
    const BLOCK_BYTES: usize = BLOCK_VALUES * 4;

    fn encode(block: &[f32], dst: &mut [u8]) -> Result<(), f32> {
        // SAFETY: any 4 bytes are an f32; blocks start on multiples of 4 of a page-aligned buffer.
        let (head, values, _) = unsafe { dst.align_to_mut::<f32>() };
        assert!(head.is_empty(), "blocks are 4-byte aligned");
        values.copy_from_slice(block);
        Ok(())
    }

    fn decode(src: &[u8], out: &mut [f32]) {
        decode::decode_f32(src, out)
    }

    fn decode_column(src: &[u8], col: usize, out: &mut [f32]) {
        for (i, o) in out.iter_mut().enumerate() {
            let at = i * PANEL + col;
            let b = &src[at * 4..at * 4 + 4];
            *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
    }
}

impl PackedFormat for Bf16 {
    const BLOCK_BYTES: usize = BLOCK_VALUES * 2;

    fn encode(block: &[f32], dst: &mut [u8]) -> Result<(), f32> {
        let halves = as_u16s_mut(dst).reinterpret_cast_mut::<bf16>();
        halves.convert_from_f32_slice(block);
        Ok(())
    }

    fn decode(src: &[u8], out: &mut [f32]) {
        decode::decode_bf16(src, out)
    }

    fn decode_column(src: &[u8], col: usize, out: &mut [f32]) {
        out.iter_mut()
            .enumerate()
            .for_each(|(i, o)| *o = bf16::from_bits(as_u16s(src)[i * PANEL + col]).to_f32())
    }
}

impl PackedFormat for Bf16Pairs {
    const BLOCK_BYTES: usize = Bf16::BLOCK_BYTES;

    fn encode(block: &[f32], dst: &mut [u8]) -> Result<(), f32> {
        Bf16::encode(block, dst)?;
        into_pairs(as_u16s_mut(dst));
        Ok(())
    }

    /// Only tests read whole blocks back (products read the pairs, embeddings a column each).
    fn decode(src: &[u8], out: &mut [f32]) {
        decode::decode_bf16_pairs(as_u16s(src), out)
    }

    fn decode_column(src: &[u8], col: usize, out: &mut [f32]) {
        out.iter_mut()
            .enumerate()
            .for_each(|(i, o)| *o = bf16::from_bits(as_u16s(src)[paired_index(i, col)]).to_f32())
    }
}

impl PackedFormat for F16 {
    const BLOCK_BYTES: usize = BLOCK_VALUES * 2;

    fn encode(block: &[f32], dst: &mut [u8]) -> Result<(), f32> {
        let halves = as_u16s_mut(dst).reinterpret_cast_mut::<f16>();
        halves.convert_from_f32_slice(block);
        if let Some(i) = halves.iter().position(|h| h.is_infinite()) {
            return Err(block[i]);
        }
        Ok(())
    }

    fn decode(src: &[u8], out: &mut [f32]) {
        decode::decode_f16(&as_u16s(src)[..out.len()], out)
    }

    fn decode_column(src: &[u8], col: usize, out: &mut [f32]) {
        out.iter_mut()
            .enumerate()
            .for_each(|(i, o)| *o = f16::from_bits(as_u16s(src)[i * PANEL + col]).to_f32())
    }
}

impl PackedFormat for Q8 {
    const BLOCK_BYTES: usize = SCALE_BYTES + BLOCK_VALUES;

    fn encode(block: &[f32], dst: &mut [u8]) -> Result<(), f32> {
        // As llama.cpp's quantize_row_q8_0_ref, per column (the loops run over the panel's
        // columns, which the compiler vectorises): d = max |x| / 127, q = round(x / d) with
        // the f32 d; the block keeps d as f16.
        let (scales, quants) = dst.split_at_mut(SCALE_BYTES);
        let mut amax = [0f32; PANEL];
        for row in block.chunks_exact(PANEL) {
            amax.iter_mut().zip(row).for_each(|(m, v)| *m = m.max(v.abs()));
        }
        let d = amax.map(|m| m / 127.0);
        let id = d.map(|d| if d != 0.0 { 1.0 / d } else { 0.0 });
        write_scales(scales, &d);
        for (i, row) in block.chunks_exact(PANEL).enumerate() {
            for (j, (v, id)) in row.iter().zip(&id).enumerate() {
                quants[q8_offset(i, j)] = round_half_away(v * id) as u8 ^ Q8_SIGN_FLIP;
            }
        }
        Ok(())
    }

    fn decode(src: &[u8], out: &mut [f32]) {
        let (scales, quants) = src.split_at(SCALE_BYTES);
        decode::decode_q8(&scales_f32(scales), quants, out)
    }

    fn decode_column(src: &[u8], col: usize, out: &mut [f32]) {
        let (scales, quants) = src.split_at(SCALE_BYTES);
        let scale = scales_f32(scales)[col];
        out.iter_mut().enumerate().for_each(|(i, o)| *o = q8_value(quants[q8_offset(i, col)]) as f32 * scale);
    }
}

impl PackedFormat for Q4 {
    const BLOCK_BYTES: usize = SCALE_BYTES + BLOCK_VALUES / 2;

    fn encode(block: &[f32], dst: &mut [u8]) -> Result<(), f32> {
        // As llama.cpp's quantize_row_q4_0_ref: d = (the value of largest magnitude) / -8,
        // q = min(15, trunc(x / d + 8.5)); inputs i and i + 16 share a byte.
        let (scales, quants) = dst.split_at_mut(SCALE_BYTES);
        let mut max = [0f32; PANEL];
        for row in block.chunks_exact(PANEL) {
            max.iter_mut().zip(row).for_each(|(m, &v)| *m = if v.abs() > m.abs() { v } else { *m });
        }
        let d = max.map(|m| m / -8.0);
        let id = d.map(|d| if d != 0.0 { 1.0 / d } else { 0.0 });
        write_scales(scales, &d);
        let quantize = |v: f32, id: f32| ((v * id + 8.5) as i8).min(15) as u8;
        let (low, high) = block.split_at(Q4_PAIR_DISTANCE * PANEL);
        for (i, (low, high)) in low.chunks_exact(PANEL).zip(high.chunks_exact(PANEL)).enumerate() {
            for (j, ((&l, &h), &id)) in low.iter().zip(high).zip(&id).enumerate() {
                quants[q4_position(i, j).0] = quantize(l, id) | quantize(h, id) << NIBBLE_BITS;
            }
        }
        Ok(())
    }

    fn decode(src: &[u8], out: &mut [f32]) {
        let (scales, quants) = src.split_at(SCALE_BYTES);
        decode::decode_q4(&scales_f32(scales), quants, out)
    }

    fn decode_column(src: &[u8], col: usize, out: &mut [f32]) {
        let (scales, quants) = src.split_at(SCALE_BYTES);
        let scale = scales_f32(scales)[col];
        for (i, o) in out.iter_mut().enumerate() {
            *o = q4_value(quants, i, col) as f32 * scale;
        }
    }
}

/// `x.round() as i8` (C's `roundf`, halves away from zero, as llama.cpp's quantizers round;
/// saturating) in a form the compiler vectorises: `f32::round` is a call into libm per value,
/// which took a quarter of a q8 load. `x - trunc(x)` is exact for every float, so the result is
/// `roundf`'s wherever it fits an i32. The one rounding of Q8_0 values: weights here,
/// activations in `int8`.
#[inline(always)]
pub fn round_half_away(x: f32) -> i8 {
    let x = x.clamp(i8::MIN.into(), i8::MAX.into()); // saturating, as `as i8` is (NaN stays NaN)
    let whole = x as i32; // towards zero (NaN gives 0)
    let fraction = x - whole as f32;
    (whole + i32::from(fraction >= 0.5) - i32::from(fraction <= -0.5)) as i8
}

/// Re-lays a block of 16-bit values from input by input into pairs of inputs (`Order::Pairs`).
fn into_pairs(block: &mut [u16]) {
    let inputs = <[u16; BLOCK_VALUES]>::try_from(&*block).expect("a whole block");
    for (i, row) in inputs.chunks_exact(PANEL).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            block[paired_index(i, j)] = v;
        }
    }
}

fn as_u16s_mut(dst: &mut [u8]) -> &mut [u16] {
    // SAFETY: any two bytes are a u16; align_to yields only whole aligned values.
    let (head, values, _) = unsafe { dst.align_to_mut::<u16>() };
    assert!(head.is_empty(), "blocks are 2-byte aligned");
    values
}

/// Column scales `d` as the f16 that start a quantized block.
fn write_scales(dst: &mut [u8], d: &[f32; PANEL]) {
    as_u16s_mut(dst).reinterpret_cast_mut::<f16>().convert_from_f32_slice(d);
}

#[cfg(test)]
mod tests {
    use super::super::layout::BLOCK;
    use super::super::pack::tests::{unpacked, values};
    use super::super::pack::PackedMatrix;
    use super::*;

    #[test]
    fn round_half_away_is_roundf_as_i8() {
        let special =
            [0.5, -0.5, 1.5, -1.5, 2.5, 126.5, 127.49, 127.5, -128.5, 0.49999997, -0.49999997, 1e9, -1e9];
        let special = special.into_iter().chain([f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0]);
        let spread = (0..200_000).map(|i| (i as f32 - 100_000.0) / 700.0);
        for x in special.chain(spread) {
            assert_eq!(round_half_away(x), x.round() as i8, "{x}");
        }
    }

    #[test]
    fn sixteen_bit_types_round_each_value_to_nearest() {
        let (k, n) = (40, 33);
        let w = values(k * n, 3).iter().map(|v| v * 1.001).collect::<Vec<_>>();
        let bf = unpacked(&PackedMatrix::from_values(WeightDtype::Bf16, &w, k, n, false).unwrap());
        let fp = unpacked(&PackedMatrix::from_values(WeightDtype::F16, &w, k, n, false).unwrap());
        for ((v, b), f) in w.iter().zip(&bf).zip(&fp) {
            assert_eq!(*b, bf16::from_f32(*v).to_f32());
            assert_eq!(*f, f16::from_f32(*v).to_f32());
        }
        assert!(PackedMatrix::from_values(WeightDtype::F16, &[7e4], 1, 1, false).is_none());
    }

    /// llama.cpp's reference quantizers, written out for one block of 32 values.
    fn q8_0_reference(x: &[f32]) -> Vec<f32> {
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let d16 = f16::from_f32(d).to_f32();
        x.iter().map(|v| (v * id).round() as i8 as f32 * d16).collect()
    }

    fn q4_0_reference(x: &[f32]) -> Vec<f32> {
        let max = x.iter().fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let d16 = f16::from_f32(d).to_f32();
        x.iter().map(|v| ((((v * id + 8.5) as i8).min(15)) as i32 - 8) as f32 * d16).collect()
    }

    #[test]
    fn quantized_types_dequantize_as_llama_cpp_blocks_along_the_inputs() {
        let (k, n) = (64, 40); // two blocks of inputs, a partial second panel
        let mut w = values(k * n, 5);
        w[..n].fill(0.0); // an all-zero column block scales by 0
        for (dtype, reference) in [
            (WeightDtype::Q8_0, q8_0_reference as fn(&[f32]) -> Vec<f32>),
            (WeightDtype::Q4_0, q4_0_reference),
        ] {
            for transposed in [false, true] {
                let stored: Vec<f32> = match transposed {
                    false => w.clone(),
                    true => (0..n).flat_map(|j| (0..k).map(|i| w[i * n + j]).collect::<Vec<_>>()).collect(),
                };
                let got = unpacked(&PackedMatrix::from_values(dtype, &stored, k, n, transposed).unwrap());
                for j in 0..n {
                    for b in 0..k / BLOCK {
                        let block: Vec<f32> = (0..BLOCK).map(|i| w[(b * BLOCK + i) * n + j]).collect();
                        let expected = reference(&block);
                        for (i, e) in expected.iter().enumerate() {
                            assert_eq!(got[(b * BLOCK + i) * n + j], *e, "{dtype} column {j} input {i}");
                        }
                    }
                }
            }
        }
    }
}
