//! ggml's tensor types to f32, as ggml's reference `dequantize_row_*` functions compute them.

use half::{bf16, f16};

use super::types::GgmlType;

/// `bytes`, whole blocks of `ggml`, into `out` (one f32 per value).
pub fn to_f32(ggml: GgmlType, bytes: &[u8], out: &mut [f32]) {
    match ggml {
        GgmlType::F32 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        GgmlType::F16 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
        GgmlType::Bf16 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = bf16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
        GgmlType::Q8_0 => {
            for (out, block) in out.chunks_exact_mut(32).zip(bytes.chunks_exact(34)) {
                let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
                for (o, &q) in out.iter_mut().zip(&block[2..]) {
                    *o = q as i8 as f32 * d;
                }
            }
        }
        GgmlType::Q4_0 => {
            for (out, block) in out.chunks_exact_mut(32).zip(bytes.chunks_exact(18)) {
                let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
                let (low, high) = out.split_at_mut(16);
                for ((l, h), &q) in low.iter_mut().zip(high).zip(&block[2..]) {
                    *l = ((q & 15) as i32 - 8) as f32 * d;
                    *h = ((q >> 4) as i32 - 8) as f32 * d;
                }
            }
        }
    }
}

/// The first non-finite block scale of `bytes` (whole Q8_0 or Q4_0 blocks), if any: a NaN or
/// infinite scale makes every logit NaN, so such a file is refused at load.
pub fn bad_scale(ggml: GgmlType, bytes: &[u8]) -> Option<f32> {
    bytes
        .chunks_exact(ggml.block_bytes())
        .map(|block| f16::from_le_bytes([block[0], block[1]]).to_f32())
        .find(|d| !d.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dequantizes_blocks_as_ggml() {
        // Q8_0: scale 0.5, values -2, 0, 3, ...
        let mut q8 = f16::from_f32(0.5).to_le_bytes().to_vec();
        q8.extend((0..32).map(|i| (i as i8 - 2) as u8));
        let mut out = [0f32; 32];
        to_f32(GgmlType::Q8_0, &q8, &mut out);
        assert_eq!(out[..3], [-1.0, -0.5, 0.0]);
        // Q4_0: byte i holds value i (low nibble) and i + 16 (high nibble), offset by 8.
        let mut q4 = f16::from_f32(2.0).to_le_bytes().to_vec();
        q4.extend((0..16).map(|i| (i as u8) | (15 - i as u8) << 4));
        to_f32(GgmlType::Q4_0, &q4, &mut out);
        assert_eq!((out[0], out[1], out[16], out[31]), (-16.0, -14.0, 14.0, -16.0));
        assert_eq!(bad_scale(GgmlType::Q4_0, &q4), None);
        q4[..2].copy_from_slice(&f16::NAN.to_le_bytes());
        assert!(bad_scale(GgmlType::Q4_0, &q4).unwrap().is_nan());
    }
}
