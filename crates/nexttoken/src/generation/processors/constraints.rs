//! The processors that apply whether or not generation samples: biases, penalties, bans and
//! forced tokens, each as transformers implements it.

use std::collections::{HashMap, HashSet};

/// Whether `ids` ends with `prefix`.
fn ends_with(ids: &[u32], prefix: &[u32]) -> bool {
    ids.len() >= prefix.len() && &ids[ids.len() - prefix.len()..] == prefix
}

/// `SequenceBiasLogitsProcessor`: each `(sequence, bias)` adds `bias` to the score of the
/// sequence's last token when `ids` ends with the rest of it (always, for one-token sequences).
/// As transformers does, the biases of one token are summed first, then added to its score.
pub fn sequence_bias(scores: &mut [f32], ids: &[u32], biases: &[(Vec<u32>, f32)]) {
    let mut bias: HashMap<u32, f32> = HashMap::new();
    for (sequence, value) in biases {
        if let Some((&last, prefix)) = sequence.split_last() {
            if ends_with(ids, prefix) {
                *bias.entry(last).or_insert(0.0) += value;
            }
        }
    }
    for (id, value) in bias {
        if let Some(s) = scores.get_mut(id as usize) {
            *s += value;
        }
    }
}

/// `NoBadWordsLogitsProcessor`: the last token of each banned sequence is removed when `ids` ends
/// with the rest of it. A banned sequence that is just an eos token is ignored, as transformers
/// ignores it (it would make the eos unreachable).
pub fn bad_words(scores: &mut [f32], ids: &[u32], banned: &[Vec<u32>], eos_token_ids: &[u32]) {
    for sequence in banned {
        if let [id] = sequence.as_slice() {
            if eos_token_ids.contains(id) {
                continue;
            }
        }
        if let Some((&last, prefix)) = sequence.split_last() {
            if ends_with(ids, prefix) {
                if let Some(s) = scores.get_mut(last as usize) {
                    *s = f32::NEG_INFINITY;
                }
            }
        }
    }
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

/// `SuppressTokensLogitsProcessor` (and the eos ban of `MinLengthLogitsProcessor`): the tokens'
/// scores become -inf.
pub fn suppress(scores: &mut [f32], ids: &[u32]) {
    for &id in ids {
        if let Some(s) = scores.get_mut(id as usize) {
            *s = f32::NEG_INFINITY;
        }
    }
}

/// `ForcedEOSTokenLogitsProcessor` at its step: only `ids` remain, each with score 0.
pub fn forced_tokens(scores: &mut [f32], ids: &[u32]) {
    scores.fill(f32::NEG_INFINITY);
    for &id in ids {
        if let Some(s) = scores.get_mut(id as usize) {
            *s = 0.0;
        }
    }
}

/// `ExponentialDecayLengthPenalty`: once more than `start` tokens are generated, each eos token's
/// finite score grows by |score| * (factor^(new_tokens - start) - 1), the growth raised in f64
/// (Python's `pow`) and applied in f32, as torch multiplies an f32 tensor by a Python float.
pub fn exponential_decay_length_penalty(
    scores: &mut [f32],
    eos_token_id: &[u32],
    new_tokens: usize,
    (start, factor): (usize, f64),
) {
    let Some(past) = new_tokens.checked_sub(start).filter(|&past| past > 0) else { return };
    let growth = (factor.powf(past as f64) - 1.0) as f32;
    // A repeated id is grown once: transformers writes the same penalty twice.
    let eos: HashSet<u32> = eos_token_id.iter().copied().collect();
    for id in eos {
        if let Some(s) = scores.get_mut(id as usize).filter(|s| s.is_finite()) {
            *s += s.abs() * growth;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEG: f32 = f32::NEG_INFINITY;

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
    fn sequence_bias_applies_when_the_prefix_matches_and_sums_per_token() {
        let mut s = vec![0.0; 5];
        let biases = [(vec![1], 1.0), (vec![3, 1], 0.5), (vec![2, 4], 9.0), (vec![3], -2.0)];
        sequence_bias(&mut s, &[0, 3], &biases);
        assert_eq!(s, vec![0.0, 1.5, 0.0, -2.0, 0.0]);
    }

    #[test]
    fn bad_words_ban_matching_sequences_but_never_a_lone_eos() {
        let mut s = vec![0.0; 5];
        bad_words(&mut s, &[0, 3], &[vec![1], vec![3, 2], vec![4, 4], vec![0]], &[0]);
        assert_eq!(s, vec![0.0, NEG, NEG, 0.0, 0.0]);
    }

    #[test]
    fn forced_tokens_leave_only_them() {
        let mut s = vec![3.0, 1.0, 2.0];
        forced_tokens(&mut s, &[1]);
        assert_eq!(s, vec![NEG, 0.0, NEG]);
    }
}
