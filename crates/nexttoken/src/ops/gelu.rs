//! GPT-2's `gelu_new`, `0.5 x (1 + tanh(u))` with `u = sqrt(2/pi) (x + 0.044715 x^3)`, vectorised;
//! `linear` applies it to `c_fc`'s output block by block while it is in cache. It is computed as the equal `x / (1 + exp(-2u))`, which needs one
//! exponential instead of libm's scalar tanh (a fifth of a prefill's time otherwise), with an
//! exponential the compiler can vectorise (Cephes' `expf`: within 2 ulp).

use super::math::exp;

simd_dispatch! {
    pub fn gelu_in_place(values: &mut [f32]) => gelu_body
}

#[inline(always)]
fn gelu_body(values: &mut [f32]) {
    const SQRT_TWO_OVER_PI: f32 = 0.797_884_6;
    for v in values {
        let x = *v;
        let u = SQRT_TWO_OVER_PI * x * (1.0 + 0.044715 * x * x);
        *v = x / (1.0 + exp(-2.0 * u));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn equals_candles_tanh_gelu() {
        let x = Tensor::randn(0f32, 3.0, (7, 5000), &Device::Cpu).unwrap();
        let mut ours = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        gelu_in_place(&mut ours);
        let theirs = x.gelu().unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (a, b) in ours.iter().zip(&theirs) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}
