//! `NativeCall`: one `generate` call as the core started it (`Gpt2::start`): its generations,
//! each driven from JS as a `NativeGeneration`, or its beam searches, run on a thread of their
//! own (they can run for minutes, and must not hold up process.exit() as a libuv task would).

use std::sync::Mutex;

use napi::bindgen_prelude::Object;
use napi::Env;
use napi_derive::napi;
use nexttoken::Call;

use crate::errors::{caught, coded};
use crate::generation::NativeGeneration;
use crate::outputs::GenerateOutput;
use crate::task::on_own_thread;

#[napi]
pub struct NativeCall {
    /// Taken by the first `generations()` or `beams()`.
    call: Mutex<Option<Call>>,
    beams: bool,
}

impl NativeCall {
    pub(crate) fn new(call: Call) -> Self {
        let beams = matches!(call, Call::Beams(_));
        NativeCall { call: Mutex::new(Some(call)), beams }
    }

    fn take(&self) -> napi::Result<Call> {
        let taken = self.call.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        taken.ok_or_else(|| coded("ERR_INTERNAL", "the call's work was taken already"))
    }
}

#[napi]
impl NativeCall {
    /// Whether the core started beam search (`beams()`) rather than generations (`generations()`).
    #[napi(getter)]
    pub fn is_beam_search(&self) -> bool {
        self.beams
    }

    /// The generations, in the order of the results.
    #[napi]
    pub fn generations(&self) -> napi::Result<Vec<NativeGeneration>> {
        caught(|| match self.take()? {
            Call::Generations(requests) => Ok(requests.into_iter().map(NativeGeneration::new).collect()),
            Call::Beams(_) => Err(coded("ERR_INTERNAL", "a beam search has no generations")),
        })
    }

    /// Runs the beam searches: every prompt's best sequences, prompt by prompt, best first.
    #[napi(ts_return_type = "Promise<GenerateOutput[]>")]
    pub fn beams<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        caught(|| match self.take()? {
            Call::Beams(searches) => on_own_thread(
                env,
                "nexttoken-beams",
                move || searches.run(),
                |outputs| outputs.into_iter().map(GenerateOutput::from).collect::<Vec<_>>(),
            ),
            Call::Generations(_) => Err(coded("ERR_INTERNAL", "generations are not a beam search")),
        })
    }
}
