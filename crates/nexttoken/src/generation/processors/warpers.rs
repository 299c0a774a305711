//! The processors transformers applies only when sampling (its former `LogitsWarper`s): they
//! reshape or cut the distribution that tokens are drawn from.

use crate::scores::log_sum_exp;

/// `TemperatureLogitsWarper`: scores divided by the temperature. A temperature so small that the
/// best score overflows (1e-38 does) gives the limit the temperature tends to, all the mass on
/// the best token, where the division would give infinities whose softmax is undefined.
pub fn temperature(scores: &mut [f32], temperature: f32) {
    let max = crate::ops::max_value(scores);
    if max.is_finite() && !(max / temperature).is_finite() {
        let best = crate::generation::sampler::argmax(scores) as usize;
        scores.iter_mut().for_each(|s| *s = f32::NEG_INFINITY);
        scores[best] = 0.0;
        return;
    }
    scores.iter_mut().for_each(|s| *s /= temperature);
}

/// `TopKLogitsWarper`: keeps scores >= the k-th best (ties with it survive).
pub fn keep_top_k(scores: &mut [f32], k: usize) {
    if k >= scores.len() {
        return;
    }
    let mut sorted: Vec<f32> = scores.to_vec();
    let (_, kth, _) = sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    let threshold = *kth;
    scores.iter_mut().filter(|s| **s < threshold).for_each(|s| *s = f32::NEG_INFINITY);
}

/// `TopPLogitsWarper`: sorts ascending, removes the tokens whose cumulative probability stays
/// <= 1 - top_p, always keeping the best one. Only finite scores take part (after top-k there
/// are few), so this does not sort the whole vocabulary.
pub fn keep_top_p(scores: &mut [f32], top_p: f32) {
    let mut candidates: Vec<usize> = (0..scores.len()).filter(|&i| scores[i].is_finite()).collect();
    if candidates.len() <= 1 {
        return;
    }
    candidates.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let max = scores[*candidates.last().unwrap()];
    let weights: Vec<f64> = candidates.iter().map(|&i| ((scores[i] - max) as f64).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut cumulative = 0.0;
    let last = candidates.len() - 1;
    for (rank, &i) in candidates.iter().enumerate() {
        cumulative += weights[rank] / total;
        if rank < last && cumulative as f32 <= 1.0 - top_p {
            scores[i] = f32::NEG_INFINITY;
        }
    }
}

/// `MinPLogitsWarper`: removes tokens whose probability is below min_p times the best token's.
pub fn keep_min_p(scores: &mut [f32], min_p: f32) {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return;
    }
    // p_i / p_max = exp(s_i - max), so no normalisation is needed.
    let threshold = min_p.ln() + max;
    scores.iter_mut().filter(|s| **s < threshold).for_each(|s| *s = f32::NEG_INFINITY);
}

/// Probabilities of `scores` (softmax, in f64 for sums over the vocabulary) and their entropy
/// in nats.
fn probabilities_and_entropy(scores: &[f32]) -> (Vec<f64>, f64) {
    let lse = log_sum_exp(scores) as f64;
    let mut entropy = 0.0;
    let probabilities = scores
        .iter()
        .map(|&s| {
            let logp = s as f64 - lse;
            let p = logp.exp();
            if p > 0.0 {
                entropy -= p * logp;
            }
            p
        })
        .collect();
    (probabilities, entropy)
}

/// `TypicalLogitsWarper` (locally typical sampling): ranks tokens by how far their surprisal
/// (-log p) is from the entropy, and keeps the closest ones until their probability reaches
/// `mass`; tokens exactly as far as the last one kept survive too, and the closest always does.
pub fn typical_p(scores: &mut [f32], mass: f32) {
    let (probabilities, entropy) = probabilities_and_entropy(scores);
    // transformers compares these distances in f32.
    let distance: Vec<f32> = probabilities.iter().map(|&p| (-p.ln() - entropy).abs() as f32).collect();
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| distance[a].total_cmp(&distance[b]));
    let mut cumulative = 0.0;
    let below = order.iter().take_while(|&&i| {
        cumulative += probabilities[i];
        cumulative < mass as f64
    });
    let last = below.count().min(order.len() - 1);
    let threshold = distance[order[last]];
    for &i in &order[1..] {
        if distance[i] > threshold {
            scores[i] = f32::NEG_INFINITY;
        }
    }
}

/// Removes tokens less likely than `threshold`, except the most likely one (transformers'
/// `min_tokens_to_keep` of 1 keeps every token that ties with the best).
fn cut_below(scores: &mut [f32], probabilities: &[f64], threshold: f64) {
    let best = crate::ops::max_value(scores);
    for (s, &p) in scores.iter_mut().zip(probabilities) {
        if p < threshold && *s < best {
            *s = f32::NEG_INFINITY;
        }
    }
}

/// `EpsilonLogitsWarper` (truncation sampling): removes tokens with probability below `epsilon`.
pub fn epsilon_cutoff(scores: &mut [f32], epsilon: f32) {
    let (probabilities, _) = probabilities_and_entropy(scores);
    cut_below(scores, &probabilities, epsilon as f64);
}

/// `EtaLogitsWarper`: removes tokens with probability below min(eta, sqrt(eta) * e^-entropy), a
/// cutoff that loosens as the distribution flattens.
pub fn eta_cutoff(scores: &mut [f32], eta: f32) {
    let (probabilities, entropy) = probabilities_and_entropy(scores);
    let eta = eta as f64;
    cut_below(scores, &probabilities, eta.min(eta.sqrt() * (-entropy).exp()));
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEG: f32 = f32::NEG_INFINITY;

    #[test]
    fn a_vanishing_temperature_gives_the_greedy_limit() {
        // 30 / 1e-38 overflows f32 (its largest value is 3.4e38).
        let mut scores = [-5.0, 30.0, 25.0, NEG];
        temperature(&mut scores, 1e-38);
        assert_eq!(scores, [NEG, 0.0, NEG, NEG]);
        let mut all_negative = [-50.0, -30.0, -40.0];
        temperature(&mut all_negative, 1e-38);
        assert_eq!(all_negative, [NEG, 0.0, NEG]);
        let mut ordinary = [1.0, -2.0, NEG];
        temperature(&mut ordinary, 0.5);
        assert_eq!(ordinary, [2.0, -4.0, NEG]);
    }

    #[test]
    fn top_k_keeps_ties_with_the_kth() {
        let mut s = vec![1.0, 3.0, 2.0, 2.0, 0.0];
        keep_top_k(&mut s, 2);
        assert_eq!(s, vec![NEG, 3.0, 2.0, 2.0, NEG]);
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        // probabilities ~ 0.665, 0.245, 0.090
        let mut s = vec![(0.09f32).ln(), (0.665f32).ln(), (0.245f32).ln()];
        keep_top_p(&mut s, 0.8);
        assert!(s[0] == NEG && s[1].is_finite() && s[2].is_finite());
        let mut one = vec![0.0, 5.0];
        keep_top_p(&mut one, 0.01);
        assert_eq!(one[0], NEG);
        assert!(one[1].is_finite(), "the best token always survives");
    }

    #[test]
    fn min_p_scales_with_the_best_probability() {
        let mut s = vec![(0.5f32).ln(), (0.3f32).ln(), (0.04f32).ln()];
        keep_min_p(&mut s, 0.1); // threshold 0.05
        assert!(s[0].is_finite() && s[1].is_finite() && s[2] == NEG);
    }

    #[test]
    fn typical_p_keeps_the_tokens_nearest_the_entropy() {
        // p = 0.5, 0.25, 0.125, 0.125: entropy 1.21 nats; surprisals 0.69, 1.39, 2.08, 2.08.
        // Distances 0.52, 0.17, 0.87, 0.87: the 0.25 token first, then the 0.5 one (0.75 in all).
        let mut s: Vec<f32> = [0.5f32, 0.25, 0.125, 0.125].iter().map(|p| p.ln()).collect();
        typical_p(&mut s, 0.7);
        assert!(s[0].is_finite() && s[1].is_finite() && s[2] == NEG && s[3] == NEG, "{s:?}");
        let mut s: Vec<f32> = [0.5f32, 0.25, 0.125, 0.125].iter().map(|p| p.ln()).collect();
        typical_p(&mut s, 0.2);
        assert!(s[1].is_finite() && s.iter().filter(|x| x.is_finite()).count() == 1, "{s:?}");
    }

    #[test]
    fn epsilon_and_eta_cut_unlikely_tokens_but_never_the_best() {
        let mut s: Vec<f32> = [0.6f32, 0.3, 0.1].iter().map(|p| p.ln()).collect();
        epsilon_cutoff(&mut s, 0.2);
        assert!(s[0].is_finite() && s[1].is_finite() && s[2] == NEG);
        let mut flat = vec![0.0f32; 4];
        epsilon_cutoff(&mut flat, 0.9);
        assert!(flat.iter().all(|x| x.is_finite()), "ties with the best survive");
        // entropy of (0.6, 0.3, 0.1) = 0.898 nats; eta 0.5: min(0.5, 0.707 * 0.407 = 0.288).
        let mut s: Vec<f32> = [0.6f32, 0.3, 0.1].iter().map(|p| p.ln()).collect();
        eta_cutoff(&mut s, 0.5);
        assert!(s[0].is_finite() && s[1].is_finite() && s[2] == NEG);
    }
}
