//! Turning one row of logits into probabilities and ranked candidates.

/// A candidate next token with its probability under the softmax of the logits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenScore {
    pub id: u32,
    pub p: f32,
    pub logprob: f32,
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

/// The `k` highest-scoring tokens, best first (ties: lower id first). Selects in O(n) and sorts
/// only the k winners instead of the whole vocabulary.
pub fn top_k(logits: &[f32], k: usize) -> Vec<TokenScore> {
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
        .map(|id| {
            let logprob = logits[id as usize] - lse;
            TokenScore { id, p: logprob.exp(), logprob }
        })
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
    fn top_k_ranks_best_first_with_ties_by_id() {
        let row = [0.5, 2.0, -1.0, 2.0, 1.0];
        let top = top_k(&row, 3);
        assert_eq!(top.iter().map(|t| t.id).collect::<Vec<_>>(), vec![1, 3, 4]);
        let total: f32 = [0.5f32, 2.0, -1.0, 2.0, 1.0].iter().map(|l| l.exp()).sum();
        assert!((top[0].p - 2f32.exp() / total).abs() < 1e-6);
        assert!((top[0].logprob - top[0].p.ln()).abs() < 1e-6);
    }

    #[test]
    fn top_k_larger_than_the_row_returns_everything() {
        assert_eq!(top_k(&[1.0, 2.0], 10).len(), 2);
        assert!(top_k(&[1.0, 2.0], 0).is_empty());
    }
}
