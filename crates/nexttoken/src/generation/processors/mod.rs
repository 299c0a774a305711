//! Logits processors, each as transformers implements it, applied in the order its `generate`
//! builds them (`_get_logits_processor`): sequence bias, repetition penalty, no-repeat n-grams,
//! bad words, minimum length, forced eos, the exponential decay length penalty, suppressed
//! tokens, then (sampling only) the warpers temperature, top-k, top-p, min-p, typical-p, epsilon
//! and eta, and last the renormalisation. A filtered token's score becomes -inf.

mod constraints;
mod warpers;

pub use constraints::{
    bad_words, exponential_decay_length_penalty, forced_tokens, no_repeat_ngram, repetition_penalty,
    sequence_bias, suppress,
};
pub use warpers::{epsilon_cutoff, eta_cutoff, keep_min_p, keep_top_k, keep_top_p, temperature, typical_p};

use super::options::GenerateOptions;
use crate::scores::log_sum_exp;

/// Where in its generation a sequence is, as the length-dependent processors need it.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The sequence so far, prompt included.
    pub ids: &'a [u32],
    /// The prompt's length as transformers counts it: the padded width in a batch.
    pub prompt_width: usize,
    /// How many tokens have been generated.
    pub new_tokens: usize,
    /// The token chosen now is the last one the length limits allow.
    pub last: bool,
}

impl<'a> Context<'a> {
    /// A sequence whose prompt is all of `ids` (nothing generated yet, no limit in sight).
    pub fn prompt(ids: &'a [u32]) -> Self {
        Context { ids, prompt_width: ids.len(), new_tokens: 0, last: false }
    }

    /// The length transformers compares `min_length` with: padded prompt + new tokens.
    fn length(&self) -> usize {
        self.prompt_width + self.new_tokens
    }
}

/// Processes `scores` (one row of logits) in place.
pub fn apply_processors(scores: &mut [f32], at: &Context, options: &GenerateOptions) {
    if !options.sequence_bias.is_empty() {
        sequence_bias(scores, at.ids, &options.sequence_bias);
    }
    if options.repetition_penalty != 1.0 {
        repetition_penalty(scores, at.ids, options.repetition_penalty);
    }
    if options.no_repeat_ngram_size > 0 {
        no_repeat_ngram(scores, at.ids, options.no_repeat_ngram_size);
    }
    if !options.bad_words_ids.is_empty() {
        bad_words(scores, at.ids, &options.bad_words_ids, &options.eos_token_id);
    }
    // transformers turns min_new_tokens into min_length = prompt width + min_new_tokens.
    let too_short = match options.min_new_tokens {
        Some(min_new_tokens) => at.new_tokens < min_new_tokens,
        None => at.length() < options.min_length,
    };
    if too_short {
        suppress(scores, &options.eos_token_id);
    }
    if at.last && !options.forced_eos_token_id.is_empty() {
        forced_tokens(scores, &options.forced_eos_token_id);
    }
    if let Some(penalty) = options.exponential_decay_length_penalty {
        exponential_decay_length_penalty(scores, &options.eos_token_id, at.new_tokens, penalty);
    }
    if !options.suppress_tokens.is_empty() {
        suppress(scores, &options.suppress_tokens);
    }
    if at.new_tokens == 0 && !options.begin_suppress_tokens.is_empty() {
        suppress(scores, &options.begin_suppress_tokens);
    }
    if options.do_sample {
        apply_warpers(scores, options);
    }
    if options.renormalize_logits {
        log_softmax(scores);
    }
}

/// The processors transformers applies only when sampling (its former `LogitsWarper`s).
fn apply_warpers(scores: &mut [f32], options: &GenerateOptions) {
    if options.temperature != 1.0 {
        temperature(scores, options.temperature);
    }
    if options.top_k > 0 {
        keep_top_k(scores, options.top_k);
    }
    if options.top_p < 1.0 {
        keep_top_p(scores, options.top_p);
    }
    if let Some(min_p) = options.min_p {
        keep_min_p(scores, min_p);
    }
    if options.typical_p < 1.0 {
        typical_p(scores, options.typical_p);
    }
    if options.epsilon_cutoff > 0.0 {
        epsilon_cutoff(scores, options.epsilon_cutoff);
    }
    if options.eta_cutoff > 0.0 {
        eta_cutoff(scores, options.eta_cutoff);
    }
}

/// `LogitNormalization`: log-softmax.
pub fn log_softmax(scores: &mut [f32]) {
    let lse = log_sum_exp(scores);
    scores.iter_mut().for_each(|s| *s -= lse);
}
