//! How Rust failures reach JavaScript: as `Error`s whose message starts with a stable code
//! (`ERR_MODEL_INVALID: ...`). index.ts lifts that prefix into `err.code`. Panics are caught
//! here too, so that a bug becomes a rejected promise instead of an aborted Node process.

use std::panic::{catch_unwind, AssertUnwindSafe};

pub fn to_napi(err: nexttoken::Error) -> napi::Error {
    coded(err.code(), &err.to_string())
}

pub fn coded(code: &str, message: &str) -> napi::Error {
    napi::Error::new(napi::Status::GenericFailure, format!("{code}: {message}"))
}

/// Runs `work`, turning both its errors and any panic into coded napi errors.
pub fn guarded<T>(work: impl FnOnce() -> nexttoken::Result<T>) -> napi::Result<T> {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(result) => result.map_err(to_napi),
        Err(payload) => Err(coded("ERR_INTERNAL", &nexttoken::error::panic_message(payload.as_ref()))),
    }
}

pub fn disposed() -> napi::Error {
    to_napi(nexttoken::Error::Disposed("model"))
}
