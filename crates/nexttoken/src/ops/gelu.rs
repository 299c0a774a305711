//! GPT-2's `gelu_new` (the tanh form) spread over threads, with candle's own formula per value.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::cpu_f32;

/// Values per task: large enough that scheduling costs nothing next to 4k tanh evaluations.
const CHUNK: usize = 4096;

pub fn gelu(x: &Tensor) -> candle_core::Result<Tensor> {
    if cpu_f32(&[x]) && x.is_contiguous() {
        x.apply_op1_no_bwd(&GeluTanh)
    } else {
        x.gelu()
    }
}

struct GeluTanh;

impl CustomOp1 for GeluTanh {
    fn name(&self) -> &'static str {
        "gelu-tanh"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else { candle_core::bail!("gelu takes f32") };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("gelu takes a contiguous tensor")
        };
        let mut out = data[start..end].to_vec();
        out.par_chunks_mut(CHUNK).for_each(|chunk| {
            for v in chunk {
                let x = *v;
                *v = 0.5 * x * (1.0 + (SQRT_TWO_OVER_PI * x * (1.0 + 0.044715 * x * x)).tanh());
            }
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

const SQRT_TWO_OVER_PI: f32 = 0.797_884_6;

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn equals_candles_gelu() {
        let x = Tensor::randn(0f32, 3.0, (7, 5000), &Device::Cpu).unwrap();
        let diff = (gelu(&x).unwrap() - x.gelu().unwrap()).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6);
    }
}
