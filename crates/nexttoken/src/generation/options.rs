//! `generate` options, named and defaulted as in transformers' `GenerationConfig`.

use super::config::GenerationConfig;
use crate::error::{Error, Result};

/// New tokens when no length is set: transformers' `max_length` default of 20, which its
/// `generate` adds to the prompt length.
pub const DEFAULT_MAX_NEW_TOKENS: usize = 20;
/// transformers' default `top_k` (used only when sampling).
pub const DEFAULT_TOP_K: usize = 50;

/// What one call set; None: not set, so the model's generation config and then transformers'
/// defaults apply (`GenerateOptions::resolve`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallOptions {
    pub max_length: Option<usize>,
    pub max_new_tokens: Option<usize>,
    /// Any of these ends the sequence; `Some(vec![])`: none does.
    pub eos_token_id: Option<Vec<u32>>,
    pub pad_token_id: Option<u32>,
    pub do_sample: Option<bool>,
    pub temperature: Option<f32>,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    pub min_p: Option<f32>,
    pub seed: Option<u64>,
    pub repetition_penalty: Option<f32>,
    pub no_repeat_ngram_size: Option<usize>,
    pub stop: Vec<String>,
    pub top_alternatives: usize,
    /// The row's batch is left-padded to this many tokens (transformers' batched `generate`):
    /// `max_length` and the default length count from it instead of from the row's own prompt.
    pub padded_length: Option<usize>,
}

/// The options a generation runs with: the call's, over the model's generation config, over
/// transformers' defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Prompt + new tokens. Ignored when `max_new_tokens` is set. None: 20 new tokens.
    pub max_length: Option<usize>,
    pub max_new_tokens: Option<usize>,
    /// Generation ends after any of these tokens (it is kept in the output). Empty: never.
    pub eos_token_ids: Vec<u32>,
    /// transformers' padding token. Accepted and checked for compatibility; nothing is padded
    /// here, because batched sequences each keep their own cache (see `scheduler`).
    pub pad_token_id: Option<u32>,
    /// false: greedy (argmax of the processed scores). true: sample from their softmax.
    pub do_sample: bool,
    pub temperature: f32,
    /// Keep the k best scores when sampling; 0 turns it off.
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches top_p when sampling; 1 is off.
    pub top_p: f32,
    /// Drop tokens less likely than min_p times the best one when sampling.
    pub min_p: Option<f32>,
    /// Seeds the sampler: the same seed gives the same tokens. None: a random seed.
    pub seed: Option<u64>,
    /// > 1 discourages tokens already in the sequence (prompt included); 1 is off.
    pub repetition_penalty: f32,
    /// Forbid any n-gram of this size from appearing twice; 0 is off.
    pub no_repeat_ngram_size: usize,
    /// Generation ends when the completion contains one of these; the result ends before it.
    pub stop: Vec<String>,
    /// Report the k most likely tokens at every step (from the same forward pass); 0 is off.
    pub top_alternatives: usize,
    /// See `CallOptions::padded_length`.
    pub padded_length: Option<usize>,
}

impl Default for GenerateOptions {
    /// transformers' global defaults (`GenerationConfig()`).
    fn default() -> Self {
        GenerateOptions {
            max_length: None,
            max_new_tokens: None,
            eos_token_ids: Vec::new(),
            pad_token_id: None,
            do_sample: false,
            temperature: 1.0,
            top_k: DEFAULT_TOP_K,
            top_p: 1.0,
            min_p: None,
            seed: None,
            repetition_penalty: 1.0,
            no_repeat_ngram_size: 0,
            stop: Vec::new(),
            top_alternatives: 0,
            padded_length: None,
        }
    }
}

fn invalid(message: String) -> Error {
    Error::InvalidArg(message)
}

impl GenerateOptions {
    /// The call's options over the model's `defaults` over transformers' defaults.
    pub fn resolve(call: CallOptions, defaults: &GenerationConfig) -> Self {
        let global = GenerateOptions::default();
        GenerateOptions {
            max_length: call.max_length.or(defaults.max_length),
            max_new_tokens: call.max_new_tokens.or(defaults.max_new_tokens),
            eos_token_ids: call.eos_token_id.unwrap_or_else(|| defaults.eos_token_ids.clone()),
            pad_token_id: call.pad_token_id.or(defaults.pad_token_id),
            do_sample: call.do_sample.or(defaults.do_sample).unwrap_or(global.do_sample),
            temperature: call.temperature.or(defaults.temperature).unwrap_or(global.temperature),
            top_k: call.top_k.or(defaults.top_k).unwrap_or(global.top_k),
            top_p: call.top_p.or(defaults.top_p).unwrap_or(global.top_p),
            min_p: call.min_p.or(defaults.min_p),
            seed: call.seed,
            repetition_penalty: call
                .repetition_penalty
                .or(defaults.repetition_penalty)
                .unwrap_or(global.repetition_penalty),
            no_repeat_ngram_size: call
                .no_repeat_ngram_size
                .or(defaults.no_repeat_ngram_size)
                .unwrap_or(global.no_repeat_ngram_size),
            stop: call.stop,
            top_alternatives: call.top_alternatives,
            padded_length: call.padded_length,
        }
    }

    /// Checks every value against what transformers accepts, for a vocabulary of `vocab_size`.
    /// Sampling options are checked only when sampling, as transformers ignores them otherwise.
    pub fn validate(&self, vocab_size: usize) -> Result<()> {
        if self.do_sample {
            self.validate_sampling()?;
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return Err(invalid(format!(
                "repetitionPenalty must be a positive number; got {}",
                self.repetition_penalty
            )));
        }
        if self.max_new_tokens == Some(0) {
            return Err(invalid("maxNewTokens must be at least 1".into()));
        }
        let ids = self.eos_token_ids.iter().map(|&id| ("eosTokenId", id));
        for (name, id) in ids.chain(self.pad_token_id.map(|id| ("padTokenId", id))) {
            if id as usize >= vocab_size {
                return Err(invalid(format!("{name} {id} is outside the vocabulary of {vocab_size} tokens")));
            }
        }
        if self.stop.iter().any(|s| s.is_empty()) {
            return Err(invalid("stop strings must not be empty".into()));
        }
        Ok(())
    }

    fn validate_sampling(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(invalid(format!(
                "temperature must be a positive number when sampling; got {} (use doSample: false for greedy)",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(invalid(format!("topP must be in (0, 1]; got {}", self.top_p)));
        }
        if let Some(min_p) = self.min_p {
            if !(0.0..=1.0).contains(&min_p) {
                return Err(invalid(format!("minP must be in [0, 1]; got {min_p}")));
            }
        }
        Ok(())
    }

    /// Whether any processor can change the logits (else greedy reads them as they are).
    pub fn processes_scores(&self) -> bool {
        self.do_sample || self.repetition_penalty != 1.0 || self.no_repeat_ngram_size > 0
    }

    /// How many tokens may follow a prompt of `prompt_len` tokens, as transformers'
    /// `_prepare_generated_length` decides: `max_new_tokens`; else `max_length` minus the
    /// (padded) prompt; else 20 new tokens, the whole capped at `n_positions`. A prompt that
    /// leaves no room under `max_length` is refused, as transformers refuses it.
    pub fn new_token_budget(&self, prompt_len: usize, n_positions: usize) -> Result<usize> {
        if let Some(n) = self.max_new_tokens {
            return Ok(n);
        }
        let width = self.padded_length.unwrap_or(prompt_len).max(prompt_len);
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

    #[test]
    fn the_call_wins_over_the_model_config_which_wins_over_transformers() {
        let model = GenerationConfig {
            max_new_tokens: Some(7),
            top_k: Some(5),
            eos_token_ids: vec![3],
            ..Default::default()
        };
        let resolved = GenerateOptions::resolve(CallOptions { top_k: Some(9), ..Default::default() }, &model);
        assert_eq!((resolved.max_new_tokens, resolved.top_k, resolved.top_p), (Some(7), 9, 1.0));
        assert_eq!(resolved.eos_token_ids, vec![3]);
        let no_eos = CallOptions { eos_token_id: Some(vec![]), ..Default::default() };
        assert!(GenerateOptions::resolve(no_eos, &model).eos_token_ids.is_empty());
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
            GenerateOptions { eos_token_ids: vec![5, 100], ..Default::default() },
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
    fn sampling_options_are_ignored_when_not_sampling() {
        let greedy = GenerateOptions { temperature: 0.0, top_p: 0.0, min_p: Some(2.0), ..Default::default() };
        assert!(greedy.validate(100).is_ok());
    }
}
