//! `generate` options, named and defaulted as in transformers' `GenerationConfig`.

use super::config::GenerationConfig;
use super::limits::Limits;
use crate::error::{Error, Result};

/// New tokens when no length is set: transformers' `max_length` default of 20, which its
/// `generate` adds to the prompt length.
pub const DEFAULT_MAX_NEW_TOKENS: usize = 20;
/// transformers' default `top_k` (used only when sampling).
pub const DEFAULT_TOP_K: usize = 50;

/// Beam search's `early_stopping`, as transformers spells it: `true`, `false` or `"never"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(untagged)]
pub enum EarlyStopping {
    /// `true`: stop as soon as `num_beams` sequences have finished.
    #[serde(deserialize_with = "true_only")]
    Done,
    /// `false` (the default): stop when no running beam can beat the finished ones at its
    /// current length.
    #[serde(deserialize_with = "false_only")]
    Heuristic,
    /// `"never"`: stop only when no running beam can beat them at any length (the canonical rule).
    #[serde(deserialize_with = "never_only")]
    Never,
}

fn exactly<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de> + PartialEq>(
    deserializer: D,
    expected: T,
) -> std::result::Result<(), D::Error> {
    match T::deserialize(deserializer)? == expected {
        true => Ok(()),
        false => Err(serde::de::Error::custom("another early_stopping")),
    }
}

fn true_only<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<(), D::Error> {
    exactly(d, true)
}

fn false_only<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<(), D::Error> {
    exactly(d, false)
}

fn never_only<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<(), D::Error> {
    exactly(d, "never".to_string())
}

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
    pub min_length: Option<usize>,
    pub min_new_tokens: Option<usize>,
    pub bad_words_ids: Option<Vec<Vec<u32>>>,
    pub sequence_bias: Option<Vec<(Vec<u32>, f32)>>,
    /// One-token biases (OpenAI's and llama.cpp's `logit_bias`), added to `sequence_bias`.
    pub logit_bias: Vec<(u32, f32)>,
    pub suppress_tokens: Option<Vec<u32>>,
    pub begin_suppress_tokens: Option<Vec<u32>>,
    pub forced_eos_token_id: Option<Vec<u32>>,
    pub typical_p: Option<f32>,
    pub epsilon_cutoff: Option<f32>,
    pub eta_cutoff: Option<f32>,
    pub renormalize_logits: Option<bool>,
    pub stop: Vec<String>,
    pub stop_strings: Option<Vec<String>>,
    pub top_alternatives: usize,
    pub processed_alternatives: bool,
    pub output_scores: bool,
    pub num_return_sequences: Option<usize>,
    pub num_beams: Option<usize>,
    pub length_penalty: Option<f32>,
    pub early_stopping: Option<EarlyStopping>,
    /// Which of the `num_return_sequences` continuations this generation is (0 for the first).
    pub sequence_index: usize,
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
    /// Ban eos while the sequence (padded prompt included) is shorter than this; 0 is off.
    pub min_length: usize,
    /// Ban eos until this many tokens are generated; wins over `min_length`, as in transformers.
    pub min_new_tokens: Option<usize>,
    /// Token sequences that must not be generated (the last token is banned after the rest).
    pub bad_words_ids: Vec<Vec<u32>>,
    /// `(sequence, bias)`: the bias is added to the sequence's last token after the rest; one
    /// entry per sequence (a later one replaces an earlier one, as transformers' dict does).
    pub sequence_bias: Vec<(Vec<u32>, f32)>,
    /// Never generated.
    pub suppress_tokens: Vec<u32>,
    /// Not generated as the first new token.
    pub begin_suppress_tokens: Vec<u32>,
    /// The last token the length allows is one of these.
    pub forced_eos_token_ids: Vec<u32>,
    /// Locally typical sampling: keep the tokens nearest the entropy up to this mass; 1 is off.
    pub typical_p: f32,
    /// Drop tokens less likely than this when sampling; 0 is off.
    pub epsilon_cutoff: f32,
    /// Drop tokens less likely than min(eta, sqrt(eta) * e^-entropy) when sampling; 0 is off.
    pub eta_cutoff: f32,
    /// Log-softmax after every processor, so that processed scores are log-probabilities.
    pub renormalize_logits: bool,
    /// Generation ends when the completion contains one of these; the result ends before it.
    pub stop: Vec<String>,
    /// transformers' `stop_strings`: generation ends once the whole text (prompt included) ends
    /// with one of these or with a token that overhangs one; the text keeps it.
    pub stop_strings: Vec<String>,
    /// Report the k most likely tokens at every step (from the same forward pass); 0 is off.
    pub top_alternatives: usize,
    /// Rank the alternatives under the processed distribution instead of the model's.
    pub processed_alternatives: bool,
    /// Give each step's log-probability under the processed distribution (`Step::score`).
    pub output_scores: bool,
    /// Continuations of one prompt the caller runs (each a generation); more than one needs sampling.
    pub num_return_sequences: usize,
    /// Which continuation this is: its seed is derived from `seed` and it (see `rng_seed`).
    pub sequence_index: usize,
    /// Beam search with this many beams when above 1 (greedy only).
    pub num_beams: usize,
    /// Beam search: a finished sequence scores sum(logprobs) / new_length^length_penalty.
    pub length_penalty: f32,
    /// Beam search: when to stop.
    pub early_stopping: EarlyStopping,
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
            min_length: 0,
            min_new_tokens: None,
            bad_words_ids: Vec::new(),
            sequence_bias: Vec::new(),
            suppress_tokens: Vec::new(),
            begin_suppress_tokens: Vec::new(),
            forced_eos_token_ids: Vec::new(),
            typical_p: 1.0,
            epsilon_cutoff: 0.0,
            eta_cutoff: 0.0,
            renormalize_logits: false,
            stop: Vec::new(),
            stop_strings: Vec::new(),
            top_alternatives: 0,
            processed_alternatives: false,
            output_scores: false,
            num_return_sequences: 1,
            sequence_index: 0,
            num_beams: 1,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::Heuristic,
            padded_length: None,
        }
    }
}

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
            min_length: call.min_length.or(defaults.min_length).unwrap_or(global.min_length),
            min_new_tokens: call.min_new_tokens.or(defaults.min_new_tokens),
            bad_words_ids: call.bad_words_ids.unwrap_or_else(|| defaults.bad_words_ids.clone()),
            sequence_bias: merge_biases(
                call.sequence_bias.unwrap_or_else(|| defaults.sequence_bias.clone()),
                call.logit_bias,
            ),
            suppress_tokens: call.suppress_tokens.unwrap_or_else(|| defaults.suppress_tokens.clone()),
            begin_suppress_tokens: call
                .begin_suppress_tokens
                .unwrap_or_else(|| defaults.begin_suppress_tokens.clone()),
            forced_eos_token_ids: call
                .forced_eos_token_id
                .unwrap_or_else(|| defaults.forced_eos_token_ids.clone()),
            typical_p: call.typical_p.or(defaults.typical_p).unwrap_or(global.typical_p),
            epsilon_cutoff: call.epsilon_cutoff.or(defaults.epsilon_cutoff).unwrap_or(global.epsilon_cutoff),
            eta_cutoff: call.eta_cutoff.or(defaults.eta_cutoff).unwrap_or(global.eta_cutoff),
            renormalize_logits: call
                .renormalize_logits
                .or(defaults.renormalize_logits)
                .unwrap_or(global.renormalize_logits),
            stop: call.stop,
            stop_strings: call.stop_strings.unwrap_or_else(|| defaults.stop_strings.clone()),
            top_alternatives: call.top_alternatives,
            processed_alternatives: call.processed_alternatives,
            output_scores: call.output_scores,
            num_return_sequences: call
                .num_return_sequences
                .or(defaults.num_return_sequences)
                .unwrap_or(global.num_return_sequences),
            sequence_index: call.sequence_index,
            num_beams: call.num_beams.or(defaults.num_beams).unwrap_or(global.num_beams),
            length_penalty: call.length_penalty.or(defaults.length_penalty).unwrap_or(global.length_penalty),
            early_stopping: call.early_stopping.or(defaults.early_stopping).unwrap_or(global.early_stopping),
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
        if self.num_return_sequences == 0 {
            return Err(invalid("numReturnSequences must be at least 1".into()));
        }
        if self.sequence_index >= self.num_return_sequences {
            return Err(invalid(format!(
                "sequence {} of {} does not exist",
                self.sequence_index, self.num_return_sequences
            )));
        }
        if self.num_beams == 0 {
            return Err(invalid("numBeams must be at least 1".into()));
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
        if self.max_new_tokens == Some(0) {
            return Err(invalid("maxNewTokens must be at least 1".into()));
        }
        self.validate_token_ids(vocab_size)?;
        if self.stop.iter().any(|s| s.is_empty()) {
            return Err(invalid("stop strings must not be empty".into()));
        }
        if self.stop_strings.iter().any(|s| s.is_empty()) {
            return Err(invalid("stopStrings must not be empty strings".into()));
        }
        if let Some((_, bias)) = self.sequence_bias.iter().find(|(_, b)| b.is_nan() || *b == f32::INFINITY) {
            return Err(invalid(format!("a bias must be a finite number or -Infinity (a ban); got {bias}")));
        }
        if self.bad_words_ids.iter().chain(self.sequence_bias.iter().map(|(s, _)| s)).any(Vec::is_empty) {
            return Err(invalid("badWordsIds and sequenceBias take non-empty token sequences".into()));
        }
        let forced = &self.forced_eos_token_ids;
        if !forced.is_empty() && forced.iter().all(|id| self.suppress_tokens.contains(id)) {
            return Err(invalid(
                "every forcedEosTokenId is also in suppressTokens: the last step would have no token left \
                 (to prevent an early eos, use minNewTokens)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Every token id an option names must be in the vocabulary.
    fn validate_token_ids(&self, vocab_size: usize) -> Result<()> {
        let lists: [(&str, &[u32]); 5] = [
            ("eosTokenId", &self.eos_token_ids),
            ("suppressTokens", &self.suppress_tokens),
            ("beginSuppressTokens", &self.begin_suppress_tokens),
            ("forcedEosTokenId", &self.forced_eos_token_ids),
            ("padTokenId", self.pad_token_id.as_slice()),
        ];
        let sequences = self.bad_words_ids.iter().map(|ids| ("badWordsIds", ids.as_slice()));
        let biased = self.sequence_bias.iter().map(|(ids, _)| ("sequenceBias", ids.as_slice()));
        for (name, ids) in lists.into_iter().chain(sequences).chain(biased) {
            if let Some(id) = ids.iter().find(|&&id| id as usize >= vocab_size) {
                return Err(invalid(format!(
                    "{name}: token {id} is outside the vocabulary of {vocab_size} tokens"
                )));
            }
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
        if !(self.typical_p > 0.0 && self.typical_p <= 1.0) {
            return Err(invalid(format!("typicalP must be in (0, 1]; got {}", self.typical_p)));
        }
        for (name, cutoff) in [("epsilonCutoff", self.epsilon_cutoff), ("etaCutoff", self.eta_cutoff)] {
            if !(0.0..1.0).contains(&cutoff) {
                return Err(invalid(format!("{name} must be in [0, 1); got {cutoff}")));
            }
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
            || !self.forced_eos_token_ids.is_empty()
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
