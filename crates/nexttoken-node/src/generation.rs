//! `NativeGeneration`: one running `generate` / `stream` call. JS pulls tokens with `next(n)`;
//! `cancel()` may be called from the JS thread while a `next` runs on the pool, so it is an
//! atomic flag that the step loop checks before every token.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::AsyncTask;
use napi::{Env, Task};
use napi_derive::napi;
use nexttoken::{GenerateOptions, Generation};

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
    generation: Arc<Mutex<Generation>>,
    cancelled: Arc<AtomicBool>,
}

impl NativeGeneration {
    pub(crate) fn new(generation: Generation) -> Self {
        NativeGeneration { generation: Arc::new(Mutex::new(generation)), cancelled: Arc::default() }
    }
}

fn poisoned() -> napi::Error {
    coded("ERR_INTERNAL", "a previous step of this generation panicked")
}

#[napi]
impl NativeGeneration {
    /// Generates up to `maxSteps` tokens (fewer if it finishes or is cancelled).
    #[napi(ts_return_type = "Promise<GenerateSteps>")]
    pub fn next(&self, max_steps: u32) -> AsyncTask<NextSteps> {
        AsyncTask::new(NextSteps {
            generation: self.generation.clone(),
            cancelled: self.cancelled.clone(),
            max_steps,
        })
    }

    /// Asks a running `next` to stop before its next token; the generation ends with 'abort'.
    #[napi]
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }

    /// The result so far: final once `next` has reported `done`.
    #[napi]
    pub fn result(&self) -> napi::Result<GenerateOutput> {
        let generation = self.generation.lock().map_err(|_| poisoned())?;
        let output = guarded(|| generation.output())?;
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        Ok(GenerateOutput {
            ids: output.ids,
            new_ids: output.new_ids,
            text: output.text,
            completion: output.completion,
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
    generation: Arc<Mutex<Generation>>,
    cancelled: Arc<AtomicBool>,
    max_steps: u32,
}

impl Task for NextSteps {
    type Output = GenerateSteps;
    type JsValue = GenerateSteps;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let mut generation = self.generation.lock().map_err(|_| poisoned())?;
        guarded(|| {
            let mut steps = Vec::new();
            while steps.len() < self.max_steps as usize {
                if self.cancelled.load(Ordering::Acquire) {
                    generation.abort();
                }
                let Some(step) = generation.step()? else {
                    break;
                };
                let alternatives = match step.alternatives.is_empty() {
                    true => None,
                    false => Some(scored_tokens(generation.tokenizer(), &step.alternatives)?),
                };
                steps.push(GenerateStep {
                    id: step.id,
                    text: step.text,
                    p: step.p as f64,
                    logprob: step.logprob as f64,
                    alternatives,
                });
            }
            if self.cancelled.load(Ordering::Acquire) {
                generation.abort();
            }
            Ok(GenerateSteps { steps, done: generation.is_finished() })
        })
    }

    fn resolve(&mut self, _: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(output)
    }
}
