//! `NativeSession`: a text kept with its KV cache (the core's `Session`). The JS class runs one
//! call at a time on it, so the lock is never contended; model work runs on the task threads.

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::{Float32Array, Object, Uint32Array, Unknown};
use napi::Env;
use napi_derive::napi;
use nexttoken::{Gpt2, Session};

use crate::errors::{caught, guarded};
use crate::generation::NativeGeneration;
use crate::options::call_options;
use crate::outputs::TokenScore;
use crate::task::on_task_thread;

type Shared = Arc<Mutex<Option<Session>>>;

#[napi]
pub struct NativeSession {
    gpt2: Arc<Gpt2>,
    /// None once disposed.
    session: Shared,
}

impl NativeSession {
    pub(crate) fn new(gpt2: Arc<Gpt2>, session: Session) -> Self {
        NativeSession { gpt2, session: Arc::new(Mutex::new(Some(session))) }
    }
}

/// Runs `work` on the session, if it is still there.
fn with_session<T>(
    shared: &Shared,
    work: impl FnOnce(&mut Session) -> nexttoken::Result<T>,
) -> nexttoken::Result<T> {
    let mut guard = shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match guard.as_mut() {
        Some(session) => work(session),
        None => Err(nexttoken::Error::Disposed("session")),
    }
}

#[napi]
impl NativeSession {
    /// The token ids of the text.
    #[napi(getter)]
    pub fn ids(&self) -> napi::Result<Uint32Array> {
        guarded(|| with_session(&self.session, |s| Ok(Uint32Array::new(s.ids().to_vec()))))
    }

    #[napi(getter)]
    pub fn positions_computed(&self) -> napi::Result<u32> {
        guarded(|| with_session(&self.session, |s| Ok(s.positions_computed() as u32)))
    }

    /// Reads `ids` after the text; only they go through the model.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn append<'env>(&self, env: &'env Env, ids: Uint32Array) -> napi::Result<Object<'env>> {
        caught(|| {
            let (session, ids) = (self.session.clone(), ids.to_vec());
            on_task_thread(env, move || with_session(&session, |s| s.append(&ids)), |()| ())
        })
    }

    /// The logits for the token after the text.
    #[napi(ts_return_type = "Promise<Float32Array>")]
    pub fn logits<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        caught(|| {
            let session = self.session.clone();
            on_task_thread(
                env,
                move || with_session(&session, |s| Ok(s.next_logits()?.to_vec())),
                Float32Array::new,
            )
        })
    }

    #[napi(ts_return_type = "Promise<Float32Array>")]
    pub fn probabilities<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        caught(|| {
            let session = self.session.clone();
            on_task_thread(env, move || with_session(&session, |s| s.probabilities()), Float32Array::new)
        })
    }

    #[napi(ts_return_type = "Promise<TokenScore[]>")]
    pub fn top_k<'env>(&self, env: &'env Env, k: u32) -> napi::Result<Object<'env>> {
        caught(|| {
            let session = self.session.clone();
            let top_k = move || {
                with_session(&session, |s| {
                    Ok(s.top_k(k as usize)?.into_iter().map(TokenScore::from).collect())
                })
            };
            on_task_thread(env, top_k, |scores: Vec<TokenScore>| scores)
        })
    }

    /// An independent copy (its own KV cache).
    #[napi(ts_return_type = "Promise<NativeSession>")]
    pub fn fork<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        caught(|| {
            let (session, gpt2) = (self.session.clone(), self.gpt2.clone());
            on_task_thread(
                env,
                move || with_session(&session, |s| Ok(NativeSession::new(gpt2, s.fork()?))),
                |forked| forked,
            )
        })
    }

    /// Keeps the first `length` tokens.
    #[napi]
    pub fn truncate(&self, length: u32) -> napi::Result<()> {
        guarded(|| {
            with_session(&self.session, |s| {
                s.truncate(length as usize);
                Ok(())
            })
        })
    }

    /// Starts a generation that continues the text; tokens come from its `next()`. The session
    /// itself changes only when JS appends the result.
    #[napi]
    pub fn start_generation(
        &self,
        #[napi(ts_arg_type = "Record<string, unknown>")] options: Unknown,
    ) -> napi::Result<NativeGeneration> {
        caught(|| {
            let options = call_options(options)?;
            let request =
                guarded(|| with_session(&self.session, |s| self.gpt2.continue_session(s, options)))?;
            Ok(NativeGeneration::new(request))
        })
    }

    /// Frees the cache; later calls fail with ERR_DISPOSED.
    #[napi]
    pub fn dispose(&self) -> napi::Result<()> {
        caught(|| {
            self.session.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
            Ok(())
        })
    }

    #[napi(getter)]
    pub fn disposed(&self) -> napi::Result<bool> {
        caught(|| Ok(self.session.lock().map(|s| s.is_none()).unwrap_or(true)))
    }
}
