//! Elementary functions written so the compiler can vectorise them inside SIMD loops (libm's
//! are scalar calls).

/// e^x for f32 without a libm call (Cephes `expf`): x = n ln 2 + r with |r| <= ln 2 / 2, e^r by
/// a degree-6 polynomial, then scaled by 2^n through the exponent bits.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.3, 88.7);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    // 2^n from n's bits: adding 1.5 * 2^23 leaves the integer n in the low mantissa bits. (A
    // float-to-int cast would saturate, which compilers do lane by lane instead of in SIMD.)
    let n_bits = (n + 12_582_912.0).to_bits().wrapping_sub(0x4B40_0000);
    f32::from_bits(n_bits.wrapping_add(127) << 23) * e_r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_a_few_ulp() {
        for i in -870..=880 {
            let x = i as f32 / 10.0;
            let (ours, libm) = (exp(x), x.exp());
            assert!((ours - libm).abs() <= 4.0 * f32::EPSILON * libm, "exp({x}): {ours} vs {libm}");
        }
    }
}
