//! Work that blocks (loading, one forward pass) run on libuv's thread pool as a napi `Task`,
//! its result converted to JS on the JS thread. One generic task, so that the exposed classes
//! need no task type each (and no module imports another's to build its result).

use napi::bindgen_prelude::{AsyncTask, ToNapiValue, TypeName};
use napi::{Env, Task};

use crate::errors::guarded;

type Work<T> = Box<dyn FnOnce() -> nexttoken::Result<T> + Send>;

pub struct Blocking<T, J> {
    work: Option<Work<T>>,
    /// Runs on the JS thread: where JS values may be made.
    to_js: fn(T) -> J,
}

/// `work` on the pool, its result handed to JS as is.
pub fn blocking<T>(work: impl FnOnce() -> nexttoken::Result<T> + Send + 'static) -> AsyncTask<Blocking<T, T>>
where
    T: Send + ToNapiValue + TypeName + 'static,
{
    blocking_then(work, |output| output)
}

/// `work` on the pool, its result converted by `to_js` on the JS thread.
pub fn blocking_then<T, J>(
    work: impl FnOnce() -> nexttoken::Result<T> + Send + 'static,
    to_js: fn(T) -> J,
) -> AsyncTask<Blocking<T, J>>
where
    T: Send + 'static,
    J: ToNapiValue + TypeName,
{
    AsyncTask::new(Blocking { work: Some(Box::new(work)), to_js })
}

impl<T, J> Task for Blocking<T, J>
where
    T: Send + 'static,
    J: ToNapiValue + TypeName,
{
    type Output = T;
    type JsValue = J;

    fn compute(&mut self) -> napi::Result<T> {
        let work =
            self.work.take().ok_or_else(|| crate::errors::coded("ERR_INTERNAL", "a task ran twice"))?;
        guarded(work)
    }

    fn resolve(&mut self, _: Env, output: T) -> napi::Result<J> {
        Ok((self.to_js)(output))
    }
}
