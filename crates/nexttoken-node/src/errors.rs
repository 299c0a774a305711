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
    caught(|| work().map_err(to_napi))
}

/// Runs `work`, turning a panic into a coded napi error. Every synchronous call from JavaScript
/// runs in here (or in `guarded`): a panic that unwinds into Node is "failed to initiate panic",
/// an abort of the whole process.
pub fn caught<T>(work: impl FnOnce() -> napi::Result<T>) -> napi::Result<T> {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(result) => result,
        Err(payload) => Err(coded("ERR_INTERNAL", &nexttoken::error::panic_message(payload.as_ref()))),
    }
}

/// Runs `work` where a panic cannot be reported (a finalizer, `Drop`): it is caught and dropped,
/// since one that unwinds out of a finalizer aborts the process.
pub fn quietly(work: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(work));
}

pub fn disposed() -> napi::Error {
    to_napi(nexttoken::Error::Disposed("model"))
}
