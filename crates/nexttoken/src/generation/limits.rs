//! Upper bounds on what one call may ask of a model, checked before any memory is committed to it.
//!
//! Options come from strangers: a model's `generation_config.json` and a queue job's options are
//! written by someone else, and transformers bounds none of them (`num_beams: 200000` allocates
//! until the process dies). The caps are far above what anyone asks of a GPT-2, and each refusal
//! is `ERR_INVALID_ARG` (or `ERR_CONTEXT_OVERFLOW`) naming the limit:
//! - beams: 64. transformers' examples use 4-10; papers that sweep beam widths stop near 50 or 100
//!   and find quality falling past ~10.
//! - continuations of one prompt: 128, the cap of OpenAI's completions API on `n` (vLLM and
//!   llama.cpp's server follow that API; TGI caps `best_of` at 2).
//! - sequences of one call (prompts x beams, or prompts x continuations): 1024, vLLM's largest
//!   `max_num_seqs` default and the scheduler's own `MAX_BATCH_SIZE_LIMIT`.
//! - the KV cache one call may fill: 16 GiB, estimated from the model's shape and the lengths
//!   the call allows (`kv_cache_bytes`). gpt2 (124M) holds 72 KiB a position, so 64 beams at the
//!   full 1024 positions take 4.5 GiB; gpt2-xl holds 600 KiB a position, so its 64 beams of 1024
//!   positions (37.5 GiB) are refused while 16 of them (9.4 GiB) are not.
//!
//! A queue worker, a server, may tighten them (`Limits` other than `HARD`); it cannot loosen them.

use super::options::GenerateOptions;
use crate::config::Config;
use crate::error::{Error, Result};

/// Bytes of a GiB, for messages.
const GIB: f64 = (1u64 << 30) as f64;

/// What one call may ask for. `HARD` holds for every call; a caller's own limits can only be lower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_num_beams: usize,
    pub max_num_return_sequences: usize,
    /// Sequences one call holds at once: prompts x beams, or prompts x continuations.
    pub max_sequences: usize,
    /// New tokens one sequence may ask for (`maxNewTokens`, or what `maxLength` leaves).
    pub max_new_tokens: usize,
    /// The estimated KV cache of one call's sequences (`kv_cache_bytes`).
    pub max_kv_cache_bytes: u64,
    /// The input's length: UTF-16 code units of a text as JS measures it, or token ids.
    pub max_input_length: usize,
}

impl Limits {
    /// The caps every call is held to (see the module docs for why these numbers).
    pub const HARD: Limits = Limits {
        max_num_beams: 64,
        max_num_return_sequences: 128,
        max_sequences: 1024,
        max_new_tokens: usize::MAX, // bounded by the context (n_positions)
        max_kv_cache_bytes: 16 << 30,
        max_input_length: usize::MAX, // bounded by the context (`Pretrained::max_input_bytes`)
    };

    /// These limits where they are lower than `HARD`, `HARD` elsewhere: a caller may only tighten.
    pub fn within_hard(self) -> Limits {
        let hard = Limits::HARD;
        Limits {
            max_num_beams: self.max_num_beams.min(hard.max_num_beams),
            max_num_return_sequences: self.max_num_return_sequences.min(hard.max_num_return_sequences),
            max_sequences: self.max_sequences.min(hard.max_sequences),
            max_new_tokens: self.max_new_tokens.min(hard.max_new_tokens),
            max_kv_cache_bytes: self.max_kv_cache_bytes.min(hard.max_kv_cache_bytes),
            max_input_length: self.max_input_length.min(hard.max_input_length),
        }
    }

    /// The beam and continuation counts alone: what `GenerateOptions::validate` holds every
    /// generation to, whichever file or call set them.
    pub fn check_counts(&self, options: &GenerateOptions) -> Result<()> {
        if options.num_beams > self.max_num_beams {
            return Err(over("numBeams", options.num_beams, self.max_num_beams, "beams"));
        }
        if options.num_return_sequences > self.max_num_return_sequences {
            return Err(over(
                "numReturnSequences",
                options.num_return_sequences,
                self.max_num_return_sequences,
                "continuations of one prompt",
            ));
        }
        Ok(())
    }

    /// Whether `prompts` prompts of at most `prompt_len` tokens (the longest, which batched
    /// lengths count from) may run with `options` on a model of `config`, whose scheduler decodes
    /// at most `batch` sequences at once: the counts, the sequences they make together, the new
    /// tokens and the KV cache they would fill. Beam searches run each at once, all their beams
    /// held together; sampled or greedy rows beyond `batch` wait without a KV cache. A plain batch
    /// (one sequence per prompt) is bounded by the scheduler's `max_queue_length` instead.
    pub fn admit(
        &self,
        options: &GenerateOptions,
        prompts: usize,
        prompt_len: usize,
        config: &Config,
        batch: usize,
    ) -> Result<()> {
        self.check_counts(options)?;
        let per_prompt = options.num_beams.max(options.num_return_sequences);
        let sequences = prompts.saturating_mul(per_prompt);
        if per_prompt > 1 && sequences > self.max_sequences {
            return Err(Error::InvalidArg(format!(
                "{prompts} prompts x {per_prompt} sequences each make {sequences} sequences; one call may run at most {} \
                 (split the batch)",
                self.max_sequences
            )));
        }
        let budget = options.new_token_budget(prompt_len, config.n_positions)?;
        if budget > self.max_new_tokens {
            return Err(over(
                "the new tokens asked for (maxNewTokens or maxLength)",
                budget,
                self.max_new_tokens,
                "new tokens",
            ));
        }
        let width = options.prompt_width(prompt_len);
        let positions = width.saturating_add(budget).min(config.n_positions);
        let held = if options.num_beams > 1 { sequences } else { sequences.min(batch) };
        let bytes = kv_cache_bytes(config, positions).saturating_mul(held as u64);
        if bytes > self.max_kv_cache_bytes {
            return Err(Error::InvalidArg(format!(
                "{held} sequences held at once, of {positions} positions would fill a KV cache of {:.1} GiB; one call may fill at most \
                 {:.1} GiB (fewer beams, sequences or tokens)",
                bytes as f64 / GIB,
                self.max_kv_cache_bytes as f64 / GIB
            )));
        }
        Ok(())
    }

    /// An input of `len` (UTF-16 code units of text, or token ids) against `max_input_length`.
    pub fn check_input_length(&self, len: usize) -> Result<()> {
        match len > self.max_input_length {
            true => Err(over("the input's length", len, self.max_input_length, "characters or token ids")),
            false => Ok(()),
        }
    }
}

/// The KV cache of one sequence of `positions` positions: keys and values, f32, every layer.
pub fn kv_cache_bytes(config: &Config, positions: usize) -> u64 {
    let per_position = 2 * config.n_layer as u64 * config.n_embd as u64 * std::mem::size_of::<f32>() as u64;
    per_position.saturating_mul(positions as u64)
}

fn over(what: &str, got: usize, limit: usize, unit: &str) -> Error {
    Error::InvalidArg(format!("{what} is {got}; the limit is {limit} {unit}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpt2(n_layer: usize, n_embd: usize) -> Config {
        Config::from_json(&format!(
            r#"{{"model_type":"gpt2","n_embd":{n_embd},"n_head":{},"n_layer":{n_layer},"vocab_size":50257,"n_positions":1024}}"#,
            n_embd / 64
        ))
        .unwrap()
    }

    #[test]
    fn counts_past_the_caps_are_refused_with_the_limit_named() {
        let beams = GenerateOptions { num_beams: 65, ..Default::default() };
        let err = Limits::HARD.check_counts(&beams).unwrap_err();
        assert_eq!(err.code(), "ERR_INVALID_ARG");
        assert!(err.to_string().contains("64"), "{err}");
        let n = GenerateOptions { num_return_sequences: 100_000_000, do_sample: true, ..Default::default() };
        assert!(Limits::HARD.check_counts(&n).unwrap_err().to_string().contains("128"));
        assert!(Limits::HARD.check_counts(&GenerateOptions { num_beams: 64, ..Default::default() }).is_ok());
    }

    #[test]
    fn the_kv_cache_estimate_decides_admission() {
        let small = gpt2(12, 768);
        assert_eq!(kv_cache_bytes(&small, 1), 72 << 10);
        let full = GenerateOptions { num_beams: 64, max_new_tokens: Some(1000), ..Default::default() };
        assert!(Limits::HARD.admit(&full, 1, 24, &small, 16).is_ok(), "gpt2: 64 beams of 1024 positions fit");
        let xl = gpt2(48, 1600);
        let err = Limits::HARD.admit(&full, 1, 24, &xl, 16).unwrap_err();
        assert!(err.to_string().contains("16.0 GiB"), "{err}");
        let sixteen = GenerateOptions { num_beams: 16, ..full.clone() };
        assert!(Limits::HARD.admit(&sixteen, 1, 24, &xl, 16).is_ok());
        let batch = GenerateOptions { num_beams: 64, ..Default::default() };
        let err = Limits::HARD.admit(&batch, 17, 4, &small, 16).unwrap_err();
        assert!(err.to_string().contains("1024"), "{err}");
        let plain = GenerateOptions { max_new_tokens: Some(1000), ..Default::default() };
        assert!(
            Limits::HARD.admit(&plain, 100_000, 24, &xl, 16).is_ok(),
            "rows past the batch wait without a cache"
        );
    }

    #[test]
    fn a_caller_may_tighten_the_caps_but_not_loosen_them() {
        let mine = Limits { max_num_beams: 4, max_new_tokens: 50, ..Limits::HARD }.within_hard();
        assert_eq!(mine.max_num_beams, 4);
        let loose = Limits { max_num_beams: 1000, ..Limits::HARD }.within_hard();
        assert_eq!(loose.max_num_beams, 64);
        let long = GenerateOptions { max_new_tokens: Some(51), ..Default::default() };
        let err = mine.admit(&long, 1, 3, &gpt2(2, 64), 16).unwrap_err();
        assert!(err.to_string().contains("limit is 50"), "{err}");
        assert!(mine.check_input_length(10).is_ok());
        let short = Limits { max_input_length: 9, ..Limits::HARD };
        assert!(short.check_input_length(10).unwrap_err().to_string().contains('9'));
    }
}
