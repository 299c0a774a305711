//! Logits processors, each as transformers implements it, applied in the order `generate` builds
//! them: repetition penalty, no-repeat n-grams, then (sampling only) temperature, top-k, top-p,
//! min-p. A filtered token's score becomes -inf.

use std::collections::HashSet;

use super::options::GenerateOptions;

/// Processes `scores` (one row of logits) in place for the sequence `ids` generated so far
/// (prompt included).
pub fn apply_processors(scores: &mut [f32], ids: &[u32], options: &GenerateOptions) {
    if options.repetition_penalty != 1.0 {
        repetition_penalty(scores, ids, options.repetition_penalty);
    }
    if options.no_repeat_ngram_size > 0 {
        no_repeat_ngram(scores, ids, options.no_repeat_ngram_size);
    }
    if !options.do_sample {
        return;
    }
    if options.temperature != 1.0 {
        temperature(scores, options.temperature);
    }
    if options.top_k > 0 {
        top_k(scores, options.top_k);
    }
    if options.top_p < 1.0 {
        top_p(scores, options.top_p);
    }
    if let Some(min_p) = options.min_p {
        self::min_p(scores, min_p);
    }
}

/// `TemperatureLogitsWarper`: scores divided by the temperature. A temperature so small that the
/// best score overflows (1e-38 does) gives the limit the temperature tends to, all the mass on
/// the best token, where the division would give infinities whose softmax is undefined.
pub fn temperature(scores: &mut [f32], temperature: f32) {
    let max = crate::ops::max_value(scores);
    if max.is_finite() && !(max / temperature).is_finite() {
        let best = super::sampler::argmax(scores) as usize;
        scores.iter_mut().for_each(|s| *s = f32::NEG_INFINITY);
        scores[best] = 0.0;
        return;
    }
    scores.iter_mut().for_each(|s| *s /= temperature);
}

/// `RepetitionPenaltyLogitsProcessor`: every token already in `ids` has its score divided by the
/// penalty when positive and multiplied by it when negative.
pub fn repetition_penalty(scores: &mut [f32], ids: &[u32], penalty: f32) {
    let seen: HashSet<u32> = ids.iter().copied().collect();
    for id in seen {
        if let Some(s) = scores.get_mut(id as usize) {
            *s = if *s < 0.0 { *s * penalty } else { *s / penalty };
        }
    }
}

/// `NoRepeatNGramLogitsProcessor`: bans every token that would complete an n-gram already present.
pub fn no_repeat_ngram(scores: &mut [f32], ids: &[u32], n: usize) {
    if ids.len() < n {
        return;
    }
    let prefix = &ids[ids.len() + 1 - n..]; // the n-1 tokens the next one would extend
    for window in ids.windows(n) {
        if &window[..n - 1] == prefix {
            if let Some(s) = scores.get_mut(window[n - 1] as usize) {
                *s = f32::NEG_INFINITY;
            }
        }
    }
}

/// `TopKLogitsWarper`: keeps scores >= the k-th best (ties with it survive).
pub fn top_k(scores: &mut [f32], k: usize) {
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
pub fn top_p(scores: &mut [f32], top_p: f32) {
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
pub fn min_p(scores: &mut [f32], min_p: f32) {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return;
    }
    // p_i / p_max = exp(s_i - max), so no normalisation is needed.
    let threshold = min_p.ln() + max;
    scores.iter_mut().filter(|s| **s < threshold).for_each(|s| *s = f32::NEG_INFINITY);
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
    fn repetition_penalty_divides_positive_and_multiplies_negative() {
        let mut s = vec![2.0, -2.0, 1.0];
        repetition_penalty(&mut s, &[0, 1, 1], 2.0);
        assert_eq!(s, vec![1.0, -4.0, 1.0]);
    }

    #[test]
    fn no_repeat_ngram_bans_completions_of_seen_ngrams() {
        let mut s = vec![0.0; 5];
        // bigrams seen: (1,2) (2,3) (3,1); the last token is 1, so 2 is banned.
        no_repeat_ngram(&mut s, &[1, 2, 3, 1], 2);
        assert_eq!(s, vec![0.0, 0.0, NEG, 0.0, 0.0]);
    }

    #[test]
    fn top_k_keeps_ties_with_the_kth() {
        let mut s = vec![1.0, 3.0, 2.0, 2.0, 0.0];
        top_k(&mut s, 2);
        assert_eq!(s, vec![NEG, 3.0, 2.0, 2.0, NEG]);
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        // probabilities ~ 0.665, 0.245, 0.090
        let mut s = vec![(0.09f32).ln(), (0.665f32).ln(), (0.245f32).ln()];
        top_p(&mut s, 0.8);
        assert!(s[0] == NEG && s[1].is_finite() && s[2].is_finite());
        let mut one = vec![0.0, 5.0];
        top_p(&mut one, 0.01);
        assert_eq!(one[0], NEG);
        assert!(one[1].is_finite(), "the best token always survives");
    }

    #[test]
    fn min_p_scales_with_the_best_probability() {
        let mut s = vec![(0.5f32).ln(), (0.3f32).ln(), (0.04f32).ln()];
        min_p(&mut s, 0.1); // threshold 0.05
        assert!(s[0].is_finite() && s[1].is_finite() && s[2] == NEG);
    }
}
