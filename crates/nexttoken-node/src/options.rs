//! Options as JS passes them, converted to the core's types. Types only: an absent field stays
//! unset, and the core decides its default.

use std::time::Duration;

use napi_derive::napi;
use nexttoken::generation::{EarlyStopping, Limits};
use nexttoken::{CallOptions, SchedulerOptions};

/// A call's options as JS passes them: absent means unset (the core applies the model's
/// generation config, then transformers' defaults).
#[napi(object)]
pub struct NativeGenerateOptions {
    pub max_length: Option<u32>,
    pub max_new_tokens: Option<u32>,
    /// Any of these ends the sequence; `[]`: none does (JS `eosTokenId: null`).
    pub eos_token_id: Option<Vec<u32>>,
    pub pad_token_id: Option<u32>,
    pub do_sample: Option<bool>,
    pub temperature: Option<f64>,
    pub top_k: Option<u32>,
    pub top_p: Option<f64>,
    pub min_p: Option<f64>,
    pub seed: Option<f64>,
    pub repetition_penalty: Option<f64>,
    pub no_repeat_ngram_size: Option<u32>,
    pub min_length: Option<u32>,
    pub min_new_tokens: Option<u32>,
    pub bad_words_ids: Option<Vec<Vec<u32>>>,
    #[napi(ts_type = "Array<[number[], number]>")]
    pub sequence_bias: Option<Vec<(Vec<u32>, f64)>>,
    /// JS `{ [id]: bias }` as `[id, bias]` entries.
    #[napi(ts_type = "Array<[number, number]>")]
    pub logit_bias: Option<Vec<(u32, f64)>>,
    pub suppress_tokens: Option<Vec<u32>>,
    pub begin_suppress_tokens: Option<Vec<u32>>,
    pub forced_eos_token_id: Option<Vec<u32>>,
    pub typical_p: Option<f64>,
    pub epsilon_cutoff: Option<f64>,
    pub eta_cutoff: Option<f64>,
    pub renormalize_logits: Option<bool>,
    pub stop: Option<Vec<String>>,
    pub stop_strings: Option<Vec<String>>,
    pub top_alternatives: Option<u32>,
    pub processed_alternatives: Option<bool>,
    pub output_scores: Option<bool>,
    pub num_return_sequences: Option<u32>,
    pub num_beams: Option<u32>,
    pub length_penalty: Option<f64>,
    /// `true`, `false` or `'never'`.
    #[napi(ts_type = "boolean | 'never'")]
    pub early_stopping: Option<napi::Either<bool, String>>,
    /// Which of the `numReturnSequences` continuations this generation is.
    pub sequence_index: Option<u32>,
    /// `generateBatch`: the longest prompt of the batch (transformers pads to it).
    pub padded_length: Option<u32>,
}

impl From<NativeGenerateOptions> for CallOptions {
    fn from(js: NativeGenerateOptions) -> Self {
        CallOptions {
            max_length: js.max_length.map(|n| n as usize),
            max_new_tokens: js.max_new_tokens.map(|n| n as usize),
            eos_token_id: js.eos_token_id,
            pad_token_id: js.pad_token_id,
            do_sample: js.do_sample,
            temperature: js.temperature.map(|t| t as f32),
            top_k: js.top_k.map(|k| k as usize),
            top_p: js.top_p.map(|p| p as f32),
            min_p: js.min_p.map(|p| p as f32),
            seed: js.seed.map(|s| s as u64),
            repetition_penalty: js.repetition_penalty.map(|p| p as f32),
            no_repeat_ngram_size: js.no_repeat_ngram_size.map(|n| n as usize),
            min_length: js.min_length.map(|n| n as usize),
            min_new_tokens: js.min_new_tokens.map(|n| n as usize),
            bad_words_ids: js.bad_words_ids,
            sequence_bias: js
                .sequence_bias
                .map(|biases| biases.into_iter().map(|(ids, b)| (ids, b as f32)).collect()),
            logit_bias: js.logit_bias.into_iter().flatten().map(|(id, bias)| (id, bias as f32)).collect(),
            suppress_tokens: js.suppress_tokens,
            begin_suppress_tokens: js.begin_suppress_tokens,
            forced_eos_token_id: js.forced_eos_token_id,
            typical_p: js.typical_p.map(|p| p as f32),
            epsilon_cutoff: js.epsilon_cutoff.map(|e| e as f32),
            eta_cutoff: js.eta_cutoff.map(|e| e as f32),
            renormalize_logits: js.renormalize_logits,
            stop: js.stop.unwrap_or_default(),
            stop_strings: js.stop_strings,
            top_alternatives: js.top_alternatives.map_or(0, |k| k as usize),
            processed_alternatives: js.processed_alternatives.unwrap_or(false),
            output_scores: js.output_scores.unwrap_or(false),
            num_return_sequences: js.num_return_sequences.map(|n| n as usize),
            num_beams: js.num_beams.map(|n| n as usize),
            length_penalty: js.length_penalty.map(|p| p as f32),
            // The JS layer passes only the three spellings.
            early_stopping: js.early_stopping.map(|e| match e {
                napi::Either::A(true) => EarlyStopping::Done,
                napi::Either::A(false) => EarlyStopping::Heuristic,
                napi::Either::B(_) => EarlyStopping::Never,
            }),
            sequence_index: js.sequence_index.map_or(0, |i| i as usize),
            padded_length: js.padded_length.map(|n| n as usize),
        }
    }
}

/// A caller's own limits (a queue worker's), tightening the core's: an absent field keeps the
/// core's cap (`Limits::HARD`).
#[napi(object)]
pub struct NativeLimits {
    pub max_input_length: Option<u32>,
    pub max_new_tokens: Option<u32>,
    pub max_num_beams: Option<u32>,
    pub max_num_return_sequences: Option<u32>,
}

impl From<NativeLimits> for Limits {
    fn from(js: NativeLimits) -> Self {
        let hard = Limits::HARD;
        let or = |limit: Option<u32>, cap: usize| limit.map_or(cap, |n| n as usize);
        Limits {
            max_input_length: or(js.max_input_length, hard.max_input_length),
            max_new_tokens: or(js.max_new_tokens, hard.max_new_tokens),
            max_num_beams: or(js.max_num_beams, hard.max_num_beams),
            max_num_return_sequences: or(js.max_num_return_sequences, hard.max_num_return_sequences),
            ..hard
        }
    }
}

/// How the model's scheduler batches generations; an absent field takes the core's default.
#[napi(object)]
#[derive(Clone)]
pub struct NativeSchedulerOptions {
    /// A number rather than u32, so that 2^32 + 1 is refused instead of wrapping to 1.
    pub max_batch_size: Option<f64>,
    /// Milliseconds; `Infinity`: never.
    pub stream_idle_timeout_ms: Option<f64>,
    /// `Infinity`: no limit.
    pub max_queue_length: Option<f64>,
    /// Bytes; 0: off.
    pub prefix_cache_bytes: Option<f64>,
}

impl TryFrom<NativeSchedulerOptions> for SchedulerOptions {
    type Error = nexttoken::Error;

    fn try_from(js: NativeSchedulerOptions) -> nexttoken::Result<Self> {
        let defaults = SchedulerOptions::default();
        let idle_timeout = match js.stream_idle_timeout_ms {
            None => defaults.idle_timeout,
            Some(ms) if ms == f64::INFINITY => None,
            Some(ms) => Some(Duration::try_from_secs_f64(ms / 1e3).map_err(|_| {
                nexttoken::Error::InvalidArg(format!(
                    "streamIdleTimeoutMs must be a number of milliseconds above 0, or Infinity; got {ms}"
                ))
            })?),
        };
        let max_queue_length = match js.max_queue_length {
            None => defaults.max_queue_length,
            Some(n) if n == f64::INFINITY => None,
            Some(n) => Some(n as usize),
        };
        Ok(SchedulerOptions {
            // `as` saturates: a huge number stays huge and the core refuses it.
            max_batch_size: js.max_batch_size.map_or(defaults.max_batch_size, |n| n as usize),
            idle_timeout,
            max_queue_length,
            prefix_cache_bytes: js.prefix_cache_bytes.map_or(defaults.prefix_cache_bytes, |n| n as usize),
        })
    }
}
