//! `NativeGeneration`: one `generate` / `stream` call, running in the model's scheduler. JS pulls
//! tokens with `next(n)` (a pool thread waits on the request's channel); `cancel()` is a flag the
//! scheduler checks before every token, usable while a `next` is waiting.

use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::AsyncTask;
use napi::{Env, Task};
use napi_derive::napi;
use nexttoken::{Event, GenerateOptions, Output, Request, RequestHandle, Step};

use crate::errors::{coded, guarded};
use crate::model::{scored_tokens, TokenScore};

/// `GenerateOptions` as JS passes them (index.ts has checked types and applied JS defaults).
#[napi(object)]
pub struct NativeGenerateOptions {
    pub max_length: Option<u32>,
    pub max_new_tokens: Option<u32>,
    /// Absent: no end-of-sequence token.
    pub eos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
    pub do_sample: Option<bool>,
    pub temperature: Option<f64>,
    pub top_k: Option<u32>,
    pub top_p: Option<f64>,
    pub min_p: Option<f64>,
    pub seed: Option<f64>,
    pub repetition_penalty: Option<f64>,
    pub no_repeat_ngram_size: Option<u32>,
    pub stop: Option<Vec<String>>,
    pub top_alternatives: Option<u32>,
}

impl From<NativeGenerateOptions> for GenerateOptions {
    fn from(js: NativeGenerateOptions) -> Self {
        let d = GenerateOptions::default();
        GenerateOptions {
            max_length: js.max_length.map(|n| n as usize),
            max_new_tokens: js.max_new_tokens.map(|n| n as usize),
            eos_token_id: js.eos_token_id,
            pad_token_id: js.pad_token_id,
            do_sample: js.do_sample.unwrap_or(d.do_sample),
            temperature: js.temperature.map_or(d.temperature, |t| t as f32),
            top_k: js.top_k.map_or(d.top_k, |k| k as usize),
            top_p: js.top_p.map_or(d.top_p, |p| p as f32),
            min_p: js.min_p.map(|p| p as f32),
            seed: js.seed.map(|s| s as u64),
            repetition_penalty: js.repetition_penalty.map_or(d.repetition_penalty, |p| p as f32),
            no_repeat_ngram_size: js.no_repeat_ngram_size.map_or(0, |n| n as usize),
            stop: js.stop.unwrap_or_default(),
            top_alternatives: js.top_alternatives.map_or(0, |k| k as usize),
        }
    }
}

#[napi(object)]
pub struct GenerateStep {
    pub id: u32,
    pub text: String,
    pub p: f64,
    pub logprob: f64,
    pub alternatives: Option<Vec<TokenScore>>,
}

#[napi(object)]
pub struct GenerateSteps {
    pub steps: Vec<GenerateStep>,
    /// True once the generation has finished (see `result().stopReason`).
    pub done: bool,
}

#[napi(object)]
pub struct GenerateTimings {
    pub prompt_tokens: u32,
    pub prompt_ms: f64,
    pub generated_tokens: u32,
    pub generated_ms: f64,
}

#[napi(object)]
pub struct GenerateOutput {
    pub ids: Vec<u32>,
    pub new_ids: Vec<u32>,
    pub text: String,
    pub completion: String,
    #[napi(ts_type = "'eos' | 'length' | 'stop' | 'abort' | 'context' | null")]
    pub stop_reason: Option<String>,
    pub timings: GenerateTimings,
}

#[napi]
pub struct NativeGeneration {
    events: Arc<Mutex<Receiver<Event>>>,
    handle: RequestHandle,
    tokenizer: Arc<nexttoken::Tokenizer>,
    /// The final output, once the scheduler has sent it.
    output: Arc<Mutex<Option<Output>>>,
}

impl NativeGeneration {
    pub(crate) fn new(request: Request, tokenizer: Arc<nexttoken::Tokenizer>) -> Self {
        NativeGeneration {
            events: Arc::new(Mutex::new(request.events)),
            handle: request.handle,
            tokenizer,
            output: Arc::default(),
        }
    }
}

fn poisoned() -> napi::Error {
    coded("ERR_INTERNAL", "a previous call on this generation panicked")
}

#[napi]
impl NativeGeneration {
    /// Waits for the next tokens: at least one (unless the generation ends), at most `maxSteps`.
    #[napi(ts_return_type = "Promise<GenerateSteps>")]
    pub fn next(&self, max_steps: u32) -> AsyncTask<NextSteps> {
        // Tokens asked for earlier and not taken yet still count: only top the demand up.
        self.handle.want(max_steps.max(1) as usize);
        AsyncTask::new(NextSteps {
            events: self.events.clone(),
            tokenizer: self.tokenizer.clone(),
            output: self.output.clone(),
            max_steps: max_steps.max(1) as usize,
        })
    }

    /// Asks for `tokens` more tokens without waiting for them (to keep some generated ahead).
    #[napi]
    pub fn ask(&self, tokens: u32) {
        self.handle.want(tokens as usize);
    }

    /// Ends the generation before its next token; it finishes with stopReason 'abort'.
    #[napi]
    pub fn cancel(&self) {
        self.handle.cancel();
    }

    /// The final result, once `next` has reported `done`.
    #[napi]
    pub fn result(&self) -> napi::Result<GenerateOutput> {
        let output = self.output.lock().map_err(|_| poisoned())?;
        let output =
            output.as_ref().ok_or_else(|| coded("ERR_INTERNAL", "the generation has not finished"))?;
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        Ok(GenerateOutput {
            ids: output.ids.clone(),
            new_ids: output.new_ids.clone(),
            text: output.text.clone(),
            completion: output.completion.clone(),
            stop_reason: output.stop_reason.map(|r| r.as_str().to_string()),
            timings: GenerateTimings {
                prompt_tokens: output.timings.prompt_tokens as u32,
                prompt_ms: ms(output.timings.prompt),
                generated_tokens: output.timings.generated_tokens as u32,
                generated_ms: ms(output.timings.generated),
            },
        })
    }
}

pub struct NextSteps {
    events: Arc<Mutex<Receiver<Event>>>,
    tokenizer: Arc<nexttoken::Tokenizer>,
    output: Arc<Mutex<Option<Output>>>,
    max_steps: usize,
}

impl NextSteps {
    fn to_js(&self, step: Step) -> nexttoken::Result<GenerateStep> {
        let alternatives = match step.alternatives.is_empty() {
            true => None,
            false => Some(scored_tokens(&self.tokenizer, &step.alternatives)?),
        };
        Ok(GenerateStep {
            id: step.id,
            text: step.text,
            p: step.p as f64,
            logprob: step.logprob as f64,
            alternatives,
        })
    }
}

impl Task for NextSteps {
    type Output = GenerateSteps;
    type JsValue = GenerateSteps;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let events = self.events.lock().map_err(|_| poisoned())?;
        if self.output.lock().map_err(|_| poisoned())?.is_some() {
            return Ok(GenerateSteps { steps: Vec::new(), done: true });
        }
        guarded(|| {
            let mut steps = Vec::new();
            loop {
                // Block for the first event only; then take what is already there.
                let event = match steps.is_empty() {
                    true => events.recv().ok(),
                    false => events.try_recv().ok(),
                };
                match event {
                    Some(Event::Step(step)) => {
                        steps.push(self.to_js(step)?);
                        if steps.len() >= self.max_steps {
                            return Ok(GenerateSteps { steps, done: false });
                        }
                    }
                    Some(Event::Done(output)) => {
                        *self.output.lock().map_err(|_| nexttoken::Error::Internal("poisoned".into()))? =
                            Some(output?);
                        return Ok(GenerateSteps { steps, done: true });
                    }
                    None if steps.is_empty() => {
                        return Err(nexttoken::Error::Internal("the scheduler stopped".into()))
                    }
                    None => return Ok(GenerateSteps { steps, done: false }),
                }
            }
        })
    }

    fn resolve(&mut self, _: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(output)
    }
}
