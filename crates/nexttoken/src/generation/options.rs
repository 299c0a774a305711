//! `generate` options, named and defaulted as in transformers' `GenerationConfig`.

use crate::error::{Error, Result};

/// transformers' default `max_length` when neither length option is given.
pub const DEFAULT_MAX_LENGTH: usize = 20;
/// transformers' default `top_k` (used only when sampling).
pub const DEFAULT_TOP_K: usize = 50;

#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Prompt + new tokens. Ignored when `max_new_tokens` is set.
    pub max_length: Option<usize>,
    pub max_new_tokens: Option<usize>,
    /// Generation ends after this token (it is kept in the output). None: never.
    pub eos_token_id: Option<u32>,
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
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_length: None,
            max_new_tokens: None,
            eos_token_id: None,
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
        }
    }
}

fn invalid(message: String) -> Error {
    Error::InvalidArg(message)
}

impl GenerateOptions {
    /// Checks every value against what transformers accepts, for a vocabulary of `vocab_size`.
    pub fn validate(&self, vocab_size: usize) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(invalid(format!("temperature must be a positive number; got {}", self.temperature)));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(invalid(format!("topP must be in (0, 1]; got {}", self.top_p)));
        }
        if let Some(min_p) = self.min_p {
            if !(0.0..=1.0).contains(&min_p) {
                return Err(invalid(format!("minP must be in [0, 1]; got {min_p}")));
            }
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return Err(invalid(format!(
                "repetitionPenalty must be a positive number; got {}",
                self.repetition_penalty
            )));
        }
        for (name, id) in [("eosTokenId", self.eos_token_id), ("padTokenId", self.pad_token_id)] {
            if let Some(id) = id.filter(|&id| id as usize >= vocab_size) {
                return Err(invalid(format!("{name} {id} is outside the vocabulary of {vocab_size} tokens")));
            }
        }
        if self.stop.iter().any(|s| s.is_empty()) {
            return Err(invalid("stop strings must not be empty".into()));
        }
        Ok(())
    }

    /// Whether any processor can change the logits (else greedy reads them as they are).
    pub fn processes_scores(&self) -> bool {
        self.do_sample || self.repetition_penalty != 1.0 || self.no_repeat_ngram_size > 0
    }

    /// How many tokens may be added to a prompt of `prompt_len` tokens.
    pub fn new_token_budget(&self, prompt_len: usize) -> usize {
        match self.max_new_tokens {
            Some(n) => n,
            None => self.max_length.unwrap_or(DEFAULT_MAX_LENGTH).saturating_sub(prompt_len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_new_tokens_wins_over_max_length() {
        let both = GenerateOptions { max_length: Some(10), max_new_tokens: Some(3), ..Default::default() };
        assert_eq!(both.new_token_budget(8), 3);
        let length = GenerateOptions { max_length: Some(10), ..Default::default() };
        assert_eq!(length.new_token_budget(8), 2);
        assert_eq!(length.new_token_budget(12), 0);
        assert_eq!(GenerateOptions::default().new_token_budget(5), 15);
    }

    #[test]
    fn refuses_values_transformers_refuses() {
        let bad = [
            GenerateOptions { temperature: f32::NAN, ..Default::default() },
            GenerateOptions { temperature: 0.0, ..Default::default() },
            GenerateOptions { top_p: 0.0, ..Default::default() },
            GenerateOptions { top_p: 1.5, ..Default::default() },
            GenerateOptions { min_p: Some(-0.1), ..Default::default() },
            GenerateOptions { repetition_penalty: 0.0, ..Default::default() },
            GenerateOptions { eos_token_id: Some(100), ..Default::default() },
            GenerateOptions { stop: vec![String::new()], ..Default::default() },
        ];
        for options in bad {
            assert_eq!(options.validate(100).unwrap_err().code(), "ERR_INVALID_ARG", "{options:?}");
        }
        assert!(GenerateOptions::default().validate(100).is_ok());
    }
}
