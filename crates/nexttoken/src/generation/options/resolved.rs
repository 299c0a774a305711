//! What the resolved options decide: the resolution across layers beyond each option's own
//! (`logit_bias` merged into `sequence_bias`), the checks across options, the token budget and
//! the seed of each continuation.

use super::checks::Checking;
use super::{CallOptions, GenerateOptions, GenerationConfig};
use crate::error::{Error, Result};
use crate::generation::limits::Limits;

/// New tokens when no length is set: transformers' `max_length` default of 20, which its
/// `generate` adds to the prompt length.
pub const DEFAULT_MAX_NEW_TOKENS: usize = 20;

fn invalid(message: String) -> Error {
    Error::InvalidArg(message)
}

/// `sequence_bias` with `logit_bias` appended as one-token sequences, one entry per sequence: a
/// later entry replaces an earlier one, as when transformers turns the list into a dict.
fn merge_biases(sequence_bias: Vec<(Vec<u32>, f32)>, logit_bias: Vec<(u32, f32)>) -> Vec<(Vec<u32>, f32)> {
    let all = sequence_bias.into_iter().chain(logit_bias.into_iter().map(|(id, bias)| (vec![id], bias)));
    let mut merged: Vec<(Vec<u32>, f32)> = Vec::new();
    for (sequence, bias) in all {
        match merged.iter_mut().find(|(s, _)| *s == sequence) {
            Some(entry) => entry.1 = bias,
            None => merged.push((sequence, bias)),
        }
    }
    merged
}

impl CallOptions {
    /// A call's options as JSON with the JS API's names (camelCase), as a server or a test
    /// receives them. Unknown names are refused.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|err| invalid(format!("generate options: {err}")))
    }
}

impl GenerateOptions {
    /// The call's options over the model's `defaults` over transformers' defaults.
    pub fn resolve(call: CallOptions, defaults: &GenerationConfig) -> Self {
        let mut options = GenerateOptions::layer(call, defaults);
        let logit_bias = std::mem::take(&mut options.logit_bias);
        options.sequence_bias = merge_biases(std::mem::take(&mut options.sequence_bias), logit_bias);
        options
    }

    /// Checks every value against what transformers accepts, for a vocabulary of `vocab_size`.
    /// Sampling options are checked only when sampling, as transformers ignores them otherwise.
    pub fn validate(&self, vocab_size: usize) -> Result<()> {
        self.check_each(&Checking { do_sample: self.do_sample, vocab_size })?;
        if self.sequence_index >= self.num_return_sequences {
            return Err(invalid(format!(
                "sequence {} of {} does not exist",
                self.sequence_index, self.num_return_sequences
            )));
        }
        // From the call or from generation_config.json alike: neither may ask for more.
        Limits::HARD.check_counts(self)?;
        if self.num_beams > 1 {
            if self.do_sample {
                return Err(invalid(
                    "beam search with doSample (beam sampling) is not supported: use one or the other".into(),
                ));
            }
            if self.num_return_sequences > self.num_beams {
                return Err(invalid(format!(
                    "numReturnSequences ({}) must be at most numBeams ({}): beam search returns its best beams",
                    self.num_return_sequences, self.num_beams
                )));
            }
            if !self.length_penalty.is_finite() {
                return Err(invalid(format!(
                    "lengthPenalty must be a finite number; got {}",
                    self.length_penalty
                )));
            }
        } else if self.num_return_sequences > 1 && !self.do_sample {
            return Err(invalid(format!(
                "numReturnSequences {} needs doSample: true (greedy decoding gives one continuation, as in transformers)",
                self.num_return_sequences
            )));
        }
        let forced = &self.forced_eos_token_id;
        if !forced.is_empty() && forced.iter().all(|id| self.suppress_tokens.contains(id)) {
            return Err(invalid(
                "every forcedEosTokenId is also in suppressTokens: the last step would have no token left \
                 (to prevent an early eos, use minNewTokens)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Whether any processor can change the logits (else greedy reads them as they are).
    pub fn processes_scores(&self) -> bool {
        self.do_sample
            || self.repetition_penalty != 1.0
            || self.no_repeat_ngram_size > 0
            || !self.sequence_bias.is_empty()
            || !self.bad_words_ids.is_empty()
            || self.min_length > 0
            || self.min_new_tokens.is_some_and(|n| n > 0)
            || !self.forced_eos_token_id.is_empty()
            || self.exponential_decay_length_penalty.is_some()
            || !self.suppress_tokens.is_empty()
            || !self.begin_suppress_tokens.is_empty()
            || self.renormalize_logits
    }

    /// The seed of this continuation's sampler: `seed` itself for the first one, a mix of `seed`
    /// and the index for the others, so that each result depends only on the seed and its index
    /// (not on what runs beside it). None: draw a random seed.
    pub fn rng_seed(&self) -> Option<u64> {
        let index = self.sequence_index as u64;
        self.seed.map(|seed| seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17))
    }

    /// The prompt's length as transformers counts it: the batch's padded width, if any.
    pub fn prompt_width(&self, prompt_len: usize) -> usize {
        self.padded_length.unwrap_or(prompt_len).max(prompt_len)
    }

    /// How many tokens may follow a prompt of `prompt_len` tokens, as transformers'
    /// `_prepare_generated_length` decides: `max_new_tokens`; else `max_length` minus the
    /// (padded) prompt; else 20 new tokens, the whole capped at `n_positions`. A prompt that
    /// leaves no room under `max_length` is refused, as transformers refuses it, and so is a
    /// padded width past the context (a batch's padding never is; a larger one would overflow
    /// the lengths computed from it).
    pub fn new_token_budget(&self, prompt_len: usize, n_positions: usize) -> Result<usize> {
        let width = self.prompt_width(prompt_len);
        if width > n_positions {
            return Err(Error::ContextOverflow { len: width, n_positions });
        }
        if let Some(n) = self.max_new_tokens {
            return Ok(n);
        }
        let max_length = match self.max_length {
            Some(max_length) => max_length,
            None => (width + DEFAULT_MAX_NEW_TOKENS).min(n_positions),
        };
        if width >= max_length {
            let limit = match self.max_length {
                Some(_) => format!("maxLength is {max_length}"),
                None => format!("the default length ({DEFAULT_MAX_NEW_TOKENS} new tokens) is capped at nPositions {n_positions}"),
            };
            return Err(invalid(format!(
                "the prompt has {width} tokens and {limit}: nothing would be generated; raise maxLength or set maxNewTokens"
            )));
        }
        Ok(max_length - width)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_follow_transformers() {
        let budget = |options: GenerateOptions, prompt| options.new_token_budget(prompt, 1024);
        let both = GenerateOptions { max_length: Some(10), max_new_tokens: Some(3), ..Default::default() };
        assert_eq!(budget(both, 8).unwrap(), 3);
        let length = GenerateOptions { max_length: Some(10), ..Default::default() };
        assert_eq!(budget(length.clone(), 8).unwrap(), 2);
        assert_eq!(budget(length.clone(), 10).unwrap_err().code(), "ERR_INVALID_ARG");
        let padded = GenerateOptions { padded_length: Some(9), ..length };
        assert_eq!(budget(padded, 4).unwrap(), 1);
        assert_eq!(budget(GenerateOptions::default(), 27).unwrap(), 20);
        assert_eq!(budget(GenerateOptions::default(), 1010).unwrap(), 14);
        assert_eq!(budget(GenerateOptions::default(), 1024).unwrap_err().code(), "ERR_INVALID_ARG");
    }

    /// Found by fuzzing (fuzz/fuzz_targets/generate_options.rs): a padded width near
    /// `usize::MAX` overflowed `width + 20` (a panic where overflow is checked).
    #[test]
    fn a_padded_width_past_the_context_is_refused() {
        for max_new_tokens in [None, Some(5)] {
            let options =
                GenerateOptions { padded_length: Some(usize::MAX), max_new_tokens, ..Default::default() };
            assert_eq!(options.new_token_budget(3, 1024).unwrap_err().code(), "ERR_CONTEXT_OVERFLOW");
        }
        let full =
            GenerateOptions { padded_length: Some(1024), max_new_tokens: Some(5), ..Default::default() };
        assert_eq!(full.new_token_budget(3, 1024).unwrap(), 5);
    }

    #[test]
    fn the_call_wins_over_the_model_config_which_wins_over_transformers() {
        let model = GenerationConfig {
            max_new_tokens: Some(7),
            top_k: Some(5),
            eos_token_id: Some(vec![3]),
            ..Default::default()
        };
        let resolved = GenerateOptions::resolve(CallOptions { top_k: Some(9), ..Default::default() }, &model);
        assert_eq!((resolved.max_new_tokens, resolved.top_k, resolved.top_p), (Some(7), 9, 1.0));
        assert_eq!(resolved.eos_token_id, vec![3]);
        let no_eos = CallOptions { eos_token_id: Some(vec![]), ..Default::default() };
        assert!(GenerateOptions::resolve(no_eos, &model).eos_token_id.is_empty());
    }

    #[test]
    fn a_call_reads_the_js_names_and_refuses_unknown_ones() {
        let json = r#"{"maxNewTokens": 3, "eosTokenId": 5, "exponentialDecayLengthPenalty": [2, 1.5]}"#;
        let call = CallOptions::from_json(json).unwrap();
        assert_eq!(call.max_new_tokens, Some(3));
        assert_eq!(
            (call.eos_token_id, call.exponential_decay_length_penalty),
            (Some(vec![5]), Some((2, 1.5)))
        );
        let snake = CallOptions::from_json(r#"{"max_new_tokens": 3}"#).unwrap_err();
        assert!(snake.to_string().contains("unknown field `max_new_tokens`"), "{snake}");
    }

    #[test]
    fn refuses_values_transformers_refuses() {
        let sampling = GenerateOptions { do_sample: true, ..Default::default() };
        let bad = [
            GenerateOptions { temperature: f32::NAN, ..sampling.clone() },
            GenerateOptions { temperature: 0.0, ..sampling.clone() },
            GenerateOptions { top_p: 0.0, ..sampling.clone() },
            GenerateOptions { top_p: 1.5, ..sampling.clone() },
            GenerateOptions { min_p: Some(-0.1), ..sampling.clone() },
            GenerateOptions { repetition_penalty: 0.0, ..Default::default() },
            GenerateOptions { max_new_tokens: Some(0), ..Default::default() },
            GenerateOptions { eos_token_id: vec![5, 100], ..Default::default() },
            GenerateOptions { stop: vec![String::new()], ..Default::default() },
        ];
        for options in bad {
            assert_eq!(options.validate(100).unwrap_err().code(), "ERR_INVALID_ARG", "{options:?}");
        }
        let err = GenerateOptions { temperature: 0.0, ..sampling }.validate(100).unwrap_err();
        assert!(err.to_string().contains("doSample: false"), "{err}");
        assert!(GenerateOptions::default().validate(100).is_ok());
    }

    #[test]
    fn each_return_sequence_has_its_own_seed_and_the_first_keeps_the_callers() {
        let first = GenerateOptions {
            seed: Some(42),
            num_return_sequences: 3,
            do_sample: true,
            ..Default::default()
        };
        let second = GenerateOptions { sequence_index: 1, ..first.clone() };
        let third = GenerateOptions { sequence_index: 2, ..first.clone() };
        assert_eq!(first.rng_seed(), Some(42));
        assert!(second.rng_seed() != Some(42) && second.rng_seed() != third.rng_seed());
        assert!(
            GenerateOptions { do_sample: false, ..first.clone() }.validate(100).is_err(),
            "greedy gives one"
        );
        assert!(GenerateOptions { num_return_sequences: 0, ..first }.validate(100).is_err());
    }

    #[test]
    fn sampling_options_are_ignored_when_not_sampling() {
        let greedy = GenerateOptions { temperature: 0.0, top_p: 0.0, min_p: Some(2.0), ..Default::default() };
        assert!(greedy.validate(100).is_ok());
    }
}
