//! nexttoken: the GPT-2 family on candle, with Hugging Face's tokenizers.
//!
//! Pure Rust: the Node binding (`nexttoken-node`) only converts types and moves work off the
//! JavaScript thread; everything a GPT-2 computes is here.

// Every unsafe operation, in an `unsafe fn` too, needs its own `unsafe` block with a SAFETY
// comment, and every `unsafe fn` a `# Safety` section.
#![warn(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc)]

pub mod config;
pub mod device;
pub mod dtype;
pub mod error;
pub mod files;
pub mod generation;
pub mod gguf;
pub mod load;
mod model;
pub mod network;
mod ops;
pub mod pretrained;
mod pytorch;
pub mod scheduler;
pub mod scores;
mod session;
pub mod tokenizer;

pub use config::Config;
pub use dtype::WeightDtype;
pub use error::{Error, Result};
pub use generation::{CallOptions, GenerateOptions, Generation, GenerationConfig, Output, Step, StopReason};
pub use load::LoadOptions;
pub use model::{BeamSearches, Call, Gpt2, Reading};
pub use network::{KvCache, Network, Positions};
#[doc(hidden)]
pub use ops::Backend;
pub use pretrained::Pretrained;
pub use scheduler::{Delivery, Request, Scheduler, SchedulerOptions};
pub use scores::{ScoredText, ScoredToken, TokenScore};
pub use session::Session;
pub use tokenizer::Tokenizer;
