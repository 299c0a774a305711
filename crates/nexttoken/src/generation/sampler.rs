//! Choosing the next token from processed scores.

use rand::rngs::StdRng;
use rand::Rng;

/// The best score's index (ties: lowest id, as torch.argmax).
pub fn argmax(scores: &[f32]) -> u32 {
    // Two vectorised passes (the maximum, then where it first is) beat one branchy scalar pass.
    let best = crate::ops::max_value(scores);
    scores.iter().position(|&s| s == best).unwrap_or(0) as u32
}

/// Draws an index with probability softmax(scores), as `torch.multinomial(softmax(scores), 1)`.
pub fn sample(scores: &[f32], rng: &mut StdRng) -> u32 {
    let max = crate::ops::max_value(scores);
    let total: f64 = scores.iter().map(|&s| ((s - max) as f64).exp()).sum();
    let mut target = rng.random::<f64>() * total;
    let mut last_possible = argmax(scores);
    for (i, &s) in scores.iter().enumerate() {
        if s == f32::NEG_INFINITY {
            continue;
        }
        let w = ((s - max) as f64).exp();
        if target < w {
            return i as u32;
        }
        target -= w;
        last_possible = i as u32;
    }
    last_possible // rounding left a sliver past the end
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn argmax_prefers_the_lowest_id_on_ties() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
    }

    #[test]
    fn sampling_never_picks_a_filtered_token_and_follows_the_distribution() {
        let scores = [f32::NEG_INFINITY, 0.0, (3.0f32).ln(), f32::NEG_INFINITY];
        let mut rng = StdRng::seed_from_u64(7);
        let mut counts = [0usize; 4];
        for _ in 0..4000 {
            counts[sample(&scores, &mut rng) as usize] += 1;
        }
        assert_eq!(counts[0] + counts[3], 0);
        let ratio = counts[2] as f64 / counts[1] as f64;
        assert!((2.5..3.5).contains(&ratio), "{counts:?}");
    }

    #[test]
    fn the_same_seed_draws_the_same_tokens() {
        let scores: Vec<f32> = (0..100).map(|i| (i as f32 * 0.37).sin()).collect();
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..20).map(|_| sample(&scores, &mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }
}
