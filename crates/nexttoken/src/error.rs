//! One error type for the whole crate. Every variant maps to a stable code that the Node binding
//! hands to JavaScript unchanged, so callers can branch on `err.code` instead of on messages.

use std::path::PathBuf;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A directory or file we were asked to load does not exist.
    #[error("{0}")]
    ModelNotFound(String),

    /// The files exist but do not hold a usable GPT-2 (bad config, bad safetensors, bad shapes).
    #[error("{0}")]
    ModelInvalid(String),

    /// A caller-supplied argument is outside what the operation accepts.
    #[error("{0}")]
    InvalidArg(String),

    #[error("token id {id} is out of range: the vocabulary has {vocab_size} tokens")]
    TokenOutOfRange { id: u32, vocab_size: usize },

    #[error("input has {len} tokens but the model's context holds at most {n_positions}")]
    ContextOverflow { len: usize, n_positions: usize },

    /// A text longer than the context could hold however it tokenized, refused before tokenizing.
    #[error("input has at least {len} bytes, more than the model's context of {n_positions} tokens can hold: at most {max_bytes} bytes ({n_positions} tokens of at most {token_bytes} bytes each)")]
    InputTooLong { len: usize, max_bytes: usize, n_positions: usize, token_bytes: usize },

    /// A device this build or this machine cannot run (the message says what is missing).
    #[error("{0}")]
    BackendUnavailable(String),

    /// A running generation whose caller asked for no token for longer than the scheduler's
    /// idle timeout: it was ended to free its batch slot and KV cache for others.
    #[error("no token was asked for in {} s (the idle timeout): the generation was ended to free its batch slot and KV cache", .0.as_secs_f64())]
    Idle(std::time::Duration),

    /// The scheduler already holds as many generations as its batch and queue allow.
    #[error("{0} generations are already running or waiting for a batch slot (maxBatchSize + maxQueueLength): try again later")]
    Overloaded(usize),

    /// A model or session used after `dispose()`.
    #[error("the {0} has been disposed")]
    Disposed(&'static str),

    /// A failure inside candle that is not the caller's fault (a bug or an exhausted resource).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The stable code JavaScript sees as `err.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::ModelNotFound(_) => "ERR_MODEL_NOT_FOUND",
            Error::ModelInvalid(_) => "ERR_MODEL_INVALID",
            Error::InvalidArg(_) => "ERR_INVALID_ARG",
            Error::TokenOutOfRange { .. } => "ERR_TOKEN_OUT_OF_RANGE",
            Error::ContextOverflow { .. } | Error::InputTooLong { .. } => "ERR_CONTEXT_OVERFLOW",
            Error::BackendUnavailable(_) => "ERR_BACKEND_UNAVAILABLE",
            Error::Idle(_) => "ERR_STREAM_IDLE",
            Error::Overloaded(_) => "ERR_OVERLOADED",
            Error::Disposed(_) => "ERR_DISPOSED",
            Error::Internal(_) => "ERR_INTERNAL",
        }
    }

    pub(crate) fn invalid_file(path: &std::path::Path, what: impl std::fmt::Display) -> Self {
        Error::ModelInvalid(format!("{}: {what}", path.display()))
    }

    pub(crate) fn missing_file(path: PathBuf, what: &str) -> Self {
        Error::ModelNotFound(format!("{what} not found: looked for {}", path.display()))
    }
}

impl From<candle_core::Error> for Error {
    fn from(err: candle_core::Error) -> Self {
        Error::Internal(err.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// The message of a caught panic, for the `Internal` error that reports it.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("internal panic: {what}")
}
