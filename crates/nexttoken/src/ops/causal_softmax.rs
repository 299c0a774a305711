//! Softmax over scaled attention scores with the causal mask applied in the same pass: query `i`
//! of a block of `t` new positions after `past` cached ones sees keys `0..=past + i`; later keys
//! get probability 0 without being exponentiated. The scale multiplies the scores, not q, as
//! transformers does: with a head size that is not a power of 4 the two round differently.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use super::{contiguous_f32, cpu_f32};

/// Causal softmax of `scale * scores` (.., t, past + t) along the last dimension.
pub fn causal_softmax(scores: &Tensor, scale: f32) -> candle_core::Result<Tensor> {
    let (t, total) = (scores.dim(D::Minus2)?, scores.dim(D::Minus1)?);
    if total < t {
        candle_core::bail!("causal_softmax: {t} queries but only {total} keys");
    }
    let past = total - t;
    if cpu_f32(&[scores]) {
        return scores.apply_op1_no_bwd(&CausalSoftmax { t, past, scale });
    }
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| (0..total).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    let mask = Tensor::from_vec(mask, (t, total), scores.device())?.to_dtype(scores.dtype())?;
    candle_nn::ops::softmax_last_dim(&(scores * scale as f64)?.broadcast_add(&mask)?)
}

struct CausalSoftmax {
    t: usize,
    past: usize,
    scale: f32,
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let data = contiguous_f32(storage, layout, "causal_softmax")?;
        let total = self.past + self.t;
        let mut out = vec![0f32; data.len()];
        out.par_chunks_mut(total).zip(data.par_chunks(total)).enumerate().for_each(|(row, (out, scores))| {
            let visible = self.past + row % self.t + 1;
            for (o, &s) in out.iter_mut().zip(&scores[..visible]) {
                *o = s * self.scale;
            }
            let scaled = &mut out[..visible];
            let max = scaled.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for o in scaled.iter_mut() {
                *o = (*o - max).exp();
                sum += *o;
            }
            out[..visible].iter_mut().for_each(|o| *o /= sum);
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn equals_mask_then_softmax() {
        for (t, past) in [(5, 0), (3, 4), (1, 7)] {
            let scores = Tensor::randn(0f32, 2.0, (2, 3, t, past + t), &Device::Cpu).unwrap();
            let ours = causal_softmax(&scores, 0.3).unwrap();
            let mask: Vec<f32> = (0..t)
                .flat_map(|i| (0..past + t).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 }))
                .collect();
            let mask = Tensor::from_vec(mask, (t, past + t), &Device::Cpu).unwrap();
            let scaled = (&scores * 0.3).unwrap().broadcast_add(&mask).unwrap();
            let expected = candle_nn::ops::softmax_last_dim(&scaled).unwrap();
            let diff =
                (ours - expected).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff < 1e-6, "t {t} past {past}: {diff}");
        }
    }
}
