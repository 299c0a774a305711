//! Options as JS passes them, converted to the core's types. Types only: an absent field stays
//! unset, and the core decides its default.

use std::time::Duration;

use napi::bindgen_prelude::Unknown;
use napi_derive::napi;
use nexttoken::generation::Limits;
use nexttoken::{CallOptions, GenerateOptions, GenerationConfig, SchedulerOptions};

use crate::errors::to_napi;
use crate::js_value::from_js;

/// A call's options as JS passes them (an object of `GenerateOptions`' camelCase names; absent
/// means unset), read by serde into the core's `CallOptions`: the core's option table names the
/// keys and types, so nothing here mirrors them.
pub fn call_options(options: Unknown) -> napi::Result<CallOptions> {
    from_js(options)
        .map_err(|err| to_napi(nexttoken::Error::InvalidArg(format!("generate options: {}", err.reason))))
}

/// The options a call that sets none runs with, as the core resolves them for `model` (its
/// `generation_config.json` over transformers' defaults), camelCased by the option table, plus
/// the model's `bosTokenId`.
pub fn generation_defaults(model: &GenerationConfig) -> napi::Result<serde_json::Value> {
    let defaults = GenerateOptions::resolve(CallOptions::default(), model);
    // Through JSON text, so that an f32 option reaches JS as the decimal it was written as (0.7,
    // not 0.699999988079071): serde_json prints an f32 in its shortest form. Resolved defaults
    // are finite (JSON files cannot hold Infinity or NaN), so nothing is lost on the way.
    let text = serde_json::to_string(&defaults)
        .map_err(|err| to_napi(nexttoken::Error::Internal(err.to_string())))?;
    let mut json: serde_json::Value =
        serde_json::from_str(&text).map_err(|err| to_napi(nexttoken::Error::Internal(err.to_string())))?;
    json["bosTokenId"] = model.bos_token_id.into();
    Ok(json)
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
