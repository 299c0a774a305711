//! Autoregressive generation with Hugging Face's semantics: options and their defaults, logits
//! processors in `transformers`' order, greedy or seeded sampling, UTF-8-safe streamed text with
//! stop strings (vLLM's `stop` and transformers' `stop_strings`), and the step-by-step driver that keeps one sequence's KV cache.

mod beam;
mod config;
mod generator;
mod limits;
mod options;
mod processors;
mod sampler;
mod stop_strings;
mod text;

pub use beam::beam_search;
pub use generator::{Generation, Output, Step, StopReason, Timings};
pub use limits::{kv_cache_bytes, Limits};
pub use options::{CallOptions, Checking, EarlyStopping, GenerateOptions, GenerationConfig};
pub use processors::{apply_processors, Context};
pub use text::TextStream;
