//! Turning one row of logits into probabilities and ranked candidates.

use crate::error::Result;
use crate::tokenizer::Tokenizer;

/// A candidate next token with its probability under the softmax of the logits.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenScore {
    pub id: u32,
    /// The token's text, as `tokenizer.decode([id])`.
    pub token: String,
    pub p: f32,
    pub logprob: f32,
}

/// One token of a scored text.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredToken {
    pub id: u32,
    pub token: String,
    /// log p(token | the tokens before it); None for the first token, which has no context.
    pub logprob: Option<f32>,
    /// The most likely tokens at this position, when asked for.
    pub alternatives: Vec<TokenScore>,
}

/// How likely a text is under the model, token by token.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredText {
    pub tokens: Vec<ScoredToken>,
    /// The sum of the tokens' log-probabilities.
    pub logprob: f64,
    /// transformers' `model(ids, labels=ids).loss`: the mean negative log-likelihood.
    pub loss: f64,
    /// exp(loss).
    pub perplexity: f64,
}

/// Scores `ids` from `logits`, the model's rows for every position (row t predicts token t + 1),
/// with the `top_k` most likely tokens at each position.
pub fn score_text(ids: &[u32], logits: &[f32], top_k: usize, tokenizer: &Tokenizer) -> Result<ScoredText> {
    let vocab = logits.len() / ids.len().max(1);
    let mut tokens = Vec::with_capacity(ids.len());
    let mut total = 0.0f64;
    for (t, &id) in ids.iter().enumerate() {
        let (logprob, alternatives) = match t {
            0 => (None, Vec::new()),
            _ => {
                let row = &logits[(t - 1) * vocab..t * vocab];
                let logprob = row[id as usize] - log_sum_exp(row);
                total += logprob as f64;
                (Some(logprob), most_likely(row, top_k, tokenizer)?)
            }
        };
        tokens.push(ScoredToken { id, token: tokenizer.decode(&[id])?, logprob, alternatives });
    }
    let loss = -total / (ids.len() - 1) as f64;
    Ok(ScoredText { tokens, logprob: total, loss, perplexity: loss.exp() })
}

/// log(sum(exp(logits))), computed around the maximum so that no exp overflows.
pub fn log_sum_exp(logits: &[f32]) -> f32 {
    let max = crate::ops::max_value(logits);
    if max == f32::NEG_INFINITY {
        return max;
    }
    max + crate::ops::sum_exp(logits, max).ln() as f32
}

/// Softmax of `logits`, in place.
pub fn softmax_in_place(logits: &mut [f32]) {
    let lse = log_sum_exp(logits);
    for l in logits.iter_mut() {
        *l = (*l - lse).exp();
    }
}

/// The `k` most likely tokens under `logits`, best first (ties: lower id first), with their text.
/// Tokens a processor removed (-inf) are never listed.
pub fn most_likely(logits: &[f32], k: usize, tokenizer: &Tokenizer) -> Result<Vec<TokenScore>> {
    // Ids past the tokenizer's vocabulary (a padded embedding matrix) are no token: not listed.
    let logits = &logits[..logits.len().min(tokenizer.vocab_size())];
    best_ids(logits, k)
        .into_iter()
        .map(|(id, logprob)| {
            Ok(TokenScore { id, token: tokenizer.decode(&[id])?, p: logprob.exp(), logprob })
        })
        .collect()
}

/// The `k` highest-scoring finite ids with their log-probabilities. Selects in O(n) and sorts
/// only the k winners instead of the whole vocabulary.
fn best_ids(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    let k = k.min(logits.len());
    if k == 0 {
        return Vec::new();
    }
    let lse = log_sum_exp(logits);
    let better = |a: &u32, b: &u32| {
        let (la, lb) = (logits[*a as usize], logits[*b as usize]);
        lb.total_cmp(&la).then(a.cmp(b))
    };
    let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
    if k < ids.len() {
        ids.select_nth_unstable_by(k - 1, better);
        ids.truncate(k);
    }
    ids.sort_unstable_by(better);
    ids.into_iter()
        .filter(|&id| logits[id as usize] > f32::NEG_INFINITY)
        .map(|id| (id, logits[id as usize] - lse))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let mut row = vec![1.0, 3.0, -2.0, 3.0, 1000.0];
        softmax_in_place(&mut row);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(row[4] > 0.999);
        assert_eq!(row[1], row[3]);
    }

    #[test]
    fn best_ids_rank_best_first_with_ties_by_id() {
        let row = [0.5, 2.0, -1.0, 2.0, 1.0];
        let top = best_ids(&row, 3);
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 3, 4]);
        let total: f32 = [0.5f32, 2.0, -1.0, 2.0, 1.0].iter().map(|l| l.exp()).sum();
        assert!((top[0].1.exp() - 2f32.exp() / total).abs() < 1e-6);
    }

    #[test]
    fn best_ids_stop_at_the_row_and_at_removed_tokens() {
        assert_eq!(best_ids(&[1.0, 2.0], 10).len(), 2);
        assert!(best_ids(&[1.0, 2.0], 0).is_empty());
        assert_eq!(best_ids(&[1.0, f32::NEG_INFINITY, 0.0], 3).len(), 2);
    }
}
