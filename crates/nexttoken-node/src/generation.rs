//! `NativeGeneration`: one `generate` / `stream` call, running in the model's scheduler. JS pulls
//! tokens with `next(n)`, a promise that the scheduler's threads settle when tokens are there:
//! no thread waits for them (libuv's pool stays free for fs, dns and crypto). `cancel()` is a
//! flag the scheduler checks before every token. A generation that JS lets go of (a stream
//! abandoned without `return()`) is cancelled when it is garbage-collected.

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::Object;
use napi::{Env, JsDeferred};
use napi_derive::napi;
use nexttoken::{Delivery, Request};

use crate::errors::{caught, coded, to_napi};
use crate::outputs::{GenerateOutput, GenerateSteps};

#[napi]
pub struct NativeGeneration {
    request: Request,
}

impl NativeGeneration {
    pub(crate) fn new(request: Request) -> Self {
        NativeGeneration { request }
    }
}

#[napi]
impl NativeGeneration {
    /// Resolves with the next tokens: at least one (unless the generation has ended), at most
    /// `maxSteps`. One call at a time: a second one while the first waits rejects.
    #[napi(ts_return_type = "Promise<GenerateSteps>")]
    pub fn next<'env>(&self, env: &'env Env, max_steps: u32) -> napi::Result<Object<'env>> {
        caught(|| {
            let (deferred, promise) = env.create_deferred()?;
            let pending = Arc::new(PendingSteps(Mutex::new(Some(deferred))));
            let settle = pending.clone();
            // Runs on the thread that delivers the tokens (the scheduler's), not on the JS thread.
            let on_delivery =
                Box::new(move |delivery: Delivery| settle.settle(Ok(GenerateSteps::from(delivery))));
            // A refused call rejects the promise it returns: throwing instead would leave that
            // promise rejected with nobody to handle it.
            if let Err(err) = self.request.next(max_steps as usize, on_delivery) {
                pending.settle(Err(to_napi(err)));
            }
            Ok(promise)
        })
    }

    /// Asks for `tokens` more tokens without waiting for them (to keep some generated ahead).
    #[napi]
    pub fn ask(&self, tokens: u32) -> napi::Result<()> {
        caught(|| {
            self.request.want(tokens as usize);
            Ok(())
        })
    }

    /// Ends the generation before its next token; it finishes with stopReason 'abort'.
    #[napi]
    pub fn cancel(&self) -> napi::Result<()> {
        caught(|| {
            self.request.cancel();
            Ok(())
        })
    }

    /// The final result, once `next` has reported `done`.
    #[napi]
    pub fn result(&self) -> napi::Result<GenerateOutput> {
        caught(|| {
            let output = self
                .request
                .outcome()
                .ok_or_else(|| coded("ERR_INTERNAL", "the generation has not finished"))?
                .map_err(to_napi)?;
            Ok(GenerateOutput::from(output))
        })
    }
}

type ResolveSteps = Box<dyn FnOnce(Env) -> napi::Result<GenerateSteps> + Send>;

/// A `next()` promise, settled once from whichever thread delivers the tokens. Dropped unsettled
/// it rejects: an unsettled deferred would keep Node's event loop alive forever.
struct PendingSteps(Mutex<Option<JsDeferred<GenerateSteps, ResolveSteps>>>);

impl PendingSteps {
    fn settle(&self, steps: napi::Result<GenerateSteps>) {
        let deferred = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(deferred) = deferred {
            match steps {
                Ok(steps) => deferred.resolve(Box::new(move |_| Ok(steps))),
                Err(err) => deferred.reject(err),
            }
        }
    }
}

impl Drop for PendingSteps {
    fn drop(&mut self) {
        self.settle(Err(coded("ERR_INTERNAL", "a pending next() was dropped unanswered")));
    }
}
