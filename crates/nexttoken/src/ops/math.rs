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

/// `a · b` with sixteen running sums: one 512-bit register or two 256-bit ones of independent
/// lanes, so that the compiler vectorises it (a float sum in order would not).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (a16, b16) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = a16.remainder().iter().zip(b16.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a16.zip(b16) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

simd_dispatch! {
    /// The largest of `values` (NaNs are passed over), or -inf for none.
    pub fn max_value(values: &[f32]) -> f32 => max_value_body
}

#[inline(always)]
fn max_value_body(values: &[f32]) -> f32 {
    fold16(values, f32::NEG_INFINITY, larger, larger)
}

/// The larger of `a` and `b`; a NaN `b` is passed over (and a fold starting from a number never
/// holds a NaN). One comparison and a select, which vectorises without `f32::max`'s NaN fix-ups.
#[inline(always)]
pub fn larger(a: f32, b: f32) -> f32 {
    if b > a {
        b
    } else {
        a
    }
}

/// `op` folded over `values` as sixteen interleaved partial results, combined at the end with
/// `combine`: a float fold in order does not vectorise (its order is fixed), sixteen independent
/// lanes do (one 512-bit register of f32, two of f64 or 256-bit ones). The one reduction helper
/// of the kernels.
#[inline(always)]
pub fn fold16<T: Copy>(values: &[f32], init: T, op: impl Fn(T, f32) -> T, combine: impl Fn(T, T) -> T) -> T {
    let mut lanes = [init; 16];
    let chunks = values.chunks_exact(16);
    let tail = chunks.remainder().iter().fold(init, |a, &b| op(a, b));
    for chunk in chunks {
        for i in 0..16 {
            lanes[i] = op(lanes[i], chunk[i]);
        }
    }
    lanes.into_iter().fold(tail, combine)
}

simd_dispatch! {
    /// `sum(exp(v - max))` over `values`, in double precision: a softmax denominator over a
    /// vocabulary, fifty thousand terms, without a scalar libm call per term.
    pub fn sum_exp(values: &[f32], max: f32) -> f64 => sum_exp_body
}

#[inline(always)]
fn sum_exp_body(values: &[f32], max: f32) -> f64 {
    fold16(values, 0f64, |sum, v| sum + exp(v - max) as f64, |a, b| a + b)
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

    #[test]
    fn sum_exp_equals_the_double_precision_sum() {
        let values: Vec<f32> = (0..50257).map(|i| ((i * 7919 % 2000) as f32 - 1000.0) / 40.0).collect();
        let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let expected: f64 = values.iter().map(|&v| ((v - max) as f64).exp()).sum();
        assert!((sum_exp(&values, max) - expected).abs() <= 1e-6 * expected);
    }
}
