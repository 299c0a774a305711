//! Work that blocks (one forward pass) run on libuv's thread pool as a napi `Task`, its result
//! converted to JS on the JS thread; work that may take seconds (a load, a beam search) on a
//! thread of its own (`on_own_thread`). One generic task, so that the exposed classes need no
//! task type each (and no module imports another's to build its result).

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::{AsyncTask, Object, ToNapiValue, TypeName};
use napi::{Env, Task};

use crate::errors::{coded, guarded};

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

type Resolve<J> = Box<dyn FnOnce(Env) -> napi::Result<J> + Send>;

/// `work` on a new thread named `name`, whose result settles the returned promise (converted by
/// `to_js` on the JS thread). For work that may run for seconds: Node waits for libuv's pool
/// tasks before `process.exit()` or `worker.terminate()` completes, so a `Task` held both up until
/// it ended (races.spec.ts); a thread of our own is left behind instead, and its result dropped.
pub fn on_own_thread<'env, T, J>(
    env: &'env Env,
    name: &str,
    work: impl FnOnce() -> nexttoken::Result<T> + Send + 'static,
    to_js: fn(T) -> J,
) -> napi::Result<Object<'env>>
where
    T: Send + 'static,
    J: ToNapiValue + 'static,
{
    let (deferred, promise) = env.create_deferred::<J, Resolve<J>>()?;
    // Shared with this function, so that it can reject the promise if the thread cannot start:
    // an unsettled deferred would keep the event loop alive forever.
    let pending = Arc::new(Mutex::new(Some(deferred)));
    let settle = pending.clone();
    let run = move || {
        let result = guarded(work);
        if let Some(deferred) = settle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take() {
            match result {
                Ok(output) => deferred.resolve(Box::new(move |_| Ok(to_js(output)))),
                Err(err) => deferred.reject(err),
            }
        }
    };
    if let Err(err) = std::thread::Builder::new().name(name.into()).spawn(run) {
        if let Some(deferred) = pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take() {
            deferred.reject(coded("ERR_INTERNAL", &format!("cannot start a thread: {err}")));
        }
    }
    Ok(promise)
}
