//! Attention of one new position over the cached ones, with every head on its own thread.
//!
//! For a single query candle runs `q @ k^T` and `p @ v` as one small matrix-vector product per
//! head, one head after another on one thread; reading the cache is the cost, so spreading the
//! heads over the cores is what makes long contexts cheap to decode.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::cpu_f32;

/// `softmax(scale * q k^T) v` for q (b, nh, 1, hs) and k, v (b, nh, T, hs) of any strides.
pub fn decode_attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32) -> candle_core::Result<Tensor> {
    if cpu_f32(&[q, k, v]) && q.dim(2)? == 1 {
        return q.apply_op3_no_bwd(k, v, &DecodeAttention { scale });
    }
    let att = candle_nn::ops::softmax_last_dim(&(q.matmul(&k.t()?)? * scale as f64)?)?;
    att.matmul(v)
}

struct DecodeAttention {
    scale: f32,
}

/// Rows (b, h, t, ..) of a rank-4 tensor whose last dimension is contiguous.
struct Rows<'a> {
    data: &'a [f32],
    stride: [usize; 3],
    width: usize,
}

impl<'a> Rows<'a> {
    fn new(data: &'a [f32], layout: &Layout) -> Option<Self> {
        let s = layout.stride();
        let width = *layout.shape().dims().last()?;
        (s.len() == 4 && s[3] == 1).then(|| Rows {
            data: &data[layout.start_offset()..],
            stride: [s[0], s[1], s[2]],
            width,
        })
    }

    fn row(&self, b: usize, h: usize, t: usize) -> &'a [f32] {
        let start = b * self.stride[0] + h * self.stride[1] + t * self.stride[2];
        &self.data[start..start + self.width]
    }
}

/// Dot product with eight running sums, so that the compiler can keep them in one SIMD register.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a8.zip(b8) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

impl CustomOp3 for DecodeAttention {
    fn name(&self) -> &'static str {
        "decode-attention"
    }

    fn cpu_fwd(
        &self,
        sq: &CpuStorage,
        lq: &Layout,
        sk: &CpuStorage,
        lk: &Layout,
        sv: &CpuStorage,
        lv: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(q), CpuStorage::F32(k), CpuStorage::F32(v)) = (sq, sk, sv) else {
            candle_core::bail!("decode_attention takes f32 tensors")
        };
        let (b, nh, one, hs) = lq.shape().dims4()?;
        let (_, _, total, _) = lk.shape().dims4()?;
        if one != 1 || lk.shape() != lv.shape() || lk.shape().dims4()? != (b, nh, total, hs) {
            candle_core::bail!(
                "decode_attention: q {:?}, k {:?}, v {:?}",
                lq.shape(),
                lk.shape(),
                lv.shape()
            );
        }
        let (Some(q), Some(k), Some(v)) = (Rows::new(q, lq), Rows::new(k, lk), Rows::new(v, lv)) else {
            candle_core::bail!("decode_attention needs a contiguous last dimension")
        };
        let mut out = vec![0f32; b * nh * hs];
        out.par_chunks_mut(hs).enumerate().for_each(|(head, out)| {
            let (bi, h) = (head / nh, head % nh);
            let query = q.row(bi, h, 0);
            let mut p: Vec<f32> = (0..total).map(|t| dot(query, k.row(bi, h, t)) * self.scale).collect();
            let max = p.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for x in p.iter_mut() {
                *x = (*x - max).exp();
                sum += *x;
            }
            for (t, &pt) in p.iter().enumerate() {
                let w = pt / sum;
                for (o, &x) in out.iter_mut().zip(v.row(bi, h, t)) {
                    *o += w * x;
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((b, nh, 1, hs))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn equals_candle_on_strided_caches() {
        let dev = Device::Cpu;
        let q = Tensor::randn(0f32, 1.0, (2, 3, 1, 8), &dev).unwrap();
        // A cache view: the first 5 of 9 allocated positions, as the KV cache hands them out.
        let k = Tensor::randn(0f32, 1.0, (2, 3, 9, 8), &dev).unwrap().narrow(2, 0, 5).unwrap();
        let v = Tensor::randn(0f32, 1.0, (2, 3, 9, 8), &dev).unwrap().narrow(2, 0, 5).unwrap();
        let ours = decode_attention(&q, &k, &v, 0.35).unwrap();
        let att =
            candle_nn::ops::softmax_last_dim(&(q.matmul(&k.t().unwrap()).unwrap() * 0.35).unwrap()).unwrap();
        let expected = att.matmul(&v.contiguous().unwrap()).unwrap();
        let diff = (ours - expected).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5, "{diff}");
    }
}
