//! The vectorised block decoders: a packed block back to f32, input-major, for the products
//! that widen whole panels (prompts on 16-bit and, without an integer dot product, quantized
//! weights) and for the tests that read matrices back. Each format (`format`) calls its own.

use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
use half::{bf16, f16};

use super::layout::{paired_index, q4_value, q8_offset, q8_value, PANEL};
use crate::ops::simd::{self, Level};

/// A block's bytes as u16 values (blocks start on even offsets of a page-aligned buffer).
pub fn as_u16s(src: &[u8]) -> &[u16] {
    // SAFETY: any two bytes are a u16; align_to yields only whole aligned values.
    let (head, values, _) = unsafe { src.align_to::<u16>() };
    assert!(head.is_empty(), "blocks are 2-byte aligned");
    values
}

/// The f16 column scales that start a quantized block, as f32.
pub fn scales_f32(src: &[u8]) -> [f32; PANEL] {
    let mut scales = [0f32; PANEL];
    as_u16s(src).reinterpret_cast::<f16>().convert_to_f32_slice(&mut scales);
    scales
}

simd_dispatch! {
    pub fn decode_f32(src: &[u8], out: &mut [f32]) => decode_f32_body
}

#[inline(always)]
fn decode_f32_body(src: &[u8], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(src.chunks_exact(4)) {
        *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

/// A bf16 block in pairs (`Order::Pairs`) as f32, input-major, into `out` (its first inputs).
/// Only tests read whole blocks back (products read the pairs, embeddings a column each).
pub fn decode_bf16_pairs(src: &[u16], out: &mut [f32]) {
    for (i, row) in out.chunks_mut(PANEL).enumerate() {
        for (j, o) in row.iter_mut().enumerate() {
            *o = bf16::from_bits(src[paired_index(i, j)]).to_f32();
        }
    }
}

simd_dispatch! {
    pub fn decode_bf16(src: &[u8], out: &mut [f32]) => decode_bf16_body
}

#[inline(always)]
fn decode_bf16_body(src: &[u8], out: &mut [f32]) {
    // A bf16 is the top half of an f32.
    for (o, &v) in out.iter_mut().zip(as_u16s(src)) {
        *o = f32::from_bits((v as u32) << 16);
    }
}

/// IEEE halves to f32 with the CPU's conversion instruction (AVX-512F or F16C), else half's.
pub fn decode_f16(src: &[u16], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if simd::level() >= Level::Avx512 {
        // SAFETY: the CPU has AVX-512F (`simd::level`).
        return unsafe { decode_f16_avx512(src, out) };
    }
    src.reinterpret_cast::<f16>().convert_to_f32_slice(out);
}

/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn decode_f16_avx512(src: &[u16], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let whole = src.len().min(out.len()) / 16 * 16;
    for (s, o) in src[..whole].chunks_exact(16).zip(out[..whole].chunks_exact_mut(16)) {
        // SAFETY: `s` holds 16 halves (32 bytes) and `o` 16 floats; unaligned loads and stores.
        unsafe { _mm512_storeu_ps(o.as_mut_ptr(), _mm512_cvtph_ps(_mm256_loadu_si256(s.as_ptr().cast()))) };
    }
    src[whole..].reinterpret_cast::<f16>().convert_to_f32_slice(&mut out[whole..]);
}

simd_dispatch! {
    pub fn decode_q8(scales: &[f32; PANEL], quants: &[u8], out: &mut [f32]) => decode_q8_body
}

#[inline(always)]
fn decode_q8_body(scales: &[f32; PANEL], quants: &[u8], out: &mut [f32]) {
    // Input by input (out's rows); each row's 32 columns are 4 bytes apart in their group.
    for (i, row) in out.chunks_exact_mut(PANEL).enumerate() {
        for (j, (o, s)) in row.iter_mut().zip(scales).enumerate() {
            *o = q8_value(quants[q8_offset(i, j)]) as f32 * s;
        }
    }
}

simd_dispatch! {
    pub fn decode_q4(scales: &[f32; PANEL], quants: &[u8], out: &mut [f32]) => decode_q4_body
}

#[inline(always)]
fn decode_q4_body(scales: &[f32; PANEL], quants: &[u8], out: &mut [f32]) {
    // Input by input (out's rows), as `decode_q8_body`.
    for (i, row) in out.chunks_exact_mut(PANEL).enumerate() {
        for (j, (o, s)) in row.iter_mut().zip(scales).enumerate() {
            *o = q4_value(quants, i, j) as f32 * s;
        }
    }
}
