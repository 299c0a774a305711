//! `NativeGeneration`: one `generate` / `stream` call, running in the model's scheduler. JS pulls
//! tokens with `next(n)`, a promise that the scheduler's threads settle when tokens are there:
//! no thread waits for them (libuv's pool stays free for fs, dns and crypto). `cancel()` is a
//! flag the scheduler checks before every token. A generation that JS lets go of (a stream
//! abandoned without `return()`) is cancelled when it is garbage-collected.

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::Object;
use napi::{Env, JsDeferred};
use napi_derive::napi;
use nexttoken::{CallOptions, Delivery, Request, Step};

use crate::errors::{coded, guarded, to_napi};
use crate::model::{scored_tokens, TokenScore};

/// A call's options as JS passes them: absent means unset (the core applies the model's
/// generation config, then transformers' defaults).
#[napi(object)]
pub struct NativeGenerateOptions {
    pub max_length: Option<u32>,
    pub max_new_tokens: Option<u32>,
    /// Any of these ends the sequence; `[]`: none does (JS `eosTokenId: null`).
    pub eos_token_id: Option<Vec<u32>>,
    pub pad_token_id: Option<u32>,
    pub do_sample: Option<bool>,
    pub temperature: Option<f64>,
    pub top_k: Option<u32>,
    pub top_p: Option<f64>,
    pub min_p: Option<f64>,
    pub seed: Option<f64>,
    pub repetition_penalty: Option<f64>,
    pub no_repeat_ngram_size: Option<u32>,
    pub min_length: Option<u32>,
    pub min_new_tokens: Option<u32>,
    pub bad_words_ids: Option<Vec<Vec<u32>>>,
    #[napi(ts_type = "Array<[number[], number]>")]
    pub sequence_bias: Option<Vec<(Vec<u32>, f64)>>,
    /// JS `{ [id]: bias }` as `[id, bias]` entries.
    #[napi(ts_type = "Array<[number, number]>")]
    pub logit_bias: Option<Vec<(u32, f64)>>,
    pub suppress_tokens: Option<Vec<u32>>,
    pub begin_suppress_tokens: Option<Vec<u32>>,
    pub forced_eos_token_id: Option<Vec<u32>>,
    pub typical_p: Option<f64>,
    pub epsilon_cutoff: Option<f64>,
    pub eta_cutoff: Option<f64>,
    pub renormalize_logits: Option<bool>,
    pub stop: Option<Vec<String>>,
    pub stop_strings: Option<Vec<String>>,
    pub top_alternatives: Option<u32>,
    pub processed_alternatives: Option<bool>,
    pub output_scores: Option<bool>,
    /// `generateBatch`: the longest prompt of the batch (transformers pads to it).
    pub padded_length: Option<u32>,
}

impl From<NativeGenerateOptions> for CallOptions {
    fn from(js: NativeGenerateOptions) -> Self {
        CallOptions {
            max_length: js.max_length.map(|n| n as usize),
            max_new_tokens: js.max_new_tokens.map(|n| n as usize),
            eos_token_id: js.eos_token_id,
            pad_token_id: js.pad_token_id,
            do_sample: js.do_sample,
            temperature: js.temperature.map(|t| t as f32),
            top_k: js.top_k.map(|k| k as usize),
            top_p: js.top_p.map(|p| p as f32),
            min_p: js.min_p.map(|p| p as f32),
            seed: js.seed.map(|s| s as u64),
            repetition_penalty: js.repetition_penalty.map(|p| p as f32),
            no_repeat_ngram_size: js.no_repeat_ngram_size.map(|n| n as usize),
            min_length: js.min_length.map(|n| n as usize),
            min_new_tokens: js.min_new_tokens.map(|n| n as usize),
            bad_words_ids: js.bad_words_ids,
            sequence_bias: js.sequence_bias.map(|biases| biases.into_iter().map(|(ids, b)| (ids, b as f32)).collect()),
            logit_bias: js.logit_bias.into_iter().flatten().map(|(id, bias)| (id, bias as f32)).collect(),
            suppress_tokens: js.suppress_tokens,
            begin_suppress_tokens: js.begin_suppress_tokens,
            forced_eos_token_id: js.forced_eos_token_id,
            typical_p: js.typical_p.map(|p| p as f32),
            epsilon_cutoff: js.epsilon_cutoff.map(|e| e as f32),
            eta_cutoff: js.eta_cutoff.map(|e| e as f32),
            renormalize_logits: js.renormalize_logits,
            stop: js.stop.unwrap_or_default(),
            stop_strings: js.stop_strings,
            top_alternatives: js.top_alternatives.map_or(0, |k| k as usize),
            processed_alternatives: js.processed_alternatives.unwrap_or(false),
            output_scores: js.output_scores.unwrap_or(false),
            padded_length: js.padded_length.map(|n| n as usize),
        }
    }
}

#[napi(object)]
pub struct GenerateStep {
    pub id: u32,
    pub text: String,
    pub p: f64,
    pub logprob: f64,
    pub score: Option<f64>,
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
    pub scores: Option<Vec<f64>>,
    pub timings: GenerateTimings,
}

#[napi]
pub struct NativeGeneration {
    request: Request,
    tokenizer: Arc<nexttoken::Tokenizer>,
}

impl NativeGeneration {
    pub(crate) fn new(request: Request, tokenizer: Arc<nexttoken::Tokenizer>) -> Self {
        NativeGeneration { request, tokenizer }
    }
}

#[napi]
impl NativeGeneration {
    /// Resolves with the next tokens: at least one (unless the generation has ended), at most
    /// `maxSteps`. One call at a time: a second one while the first waits rejects.
    #[napi(ts_return_type = "Promise<GenerateSteps>")]
    pub fn next<'env>(&self, env: &'env Env, max_steps: u32) -> napi::Result<Object<'env>> {
        let (deferred, promise) = env.create_deferred()?;
        let pending = Arc::new(PendingSteps(Mutex::new(Some(deferred))));
        let tokenizer = self.tokenizer.clone();
        let settle = pending.clone();
        let on_delivery = Box::new(move |delivery: Delivery| {
            settle.settle(guarded(|| to_js_steps(&tokenizer, delivery)));
        });
        // A refused call rejects the promise it returns: throwing instead would leave that
        // promise rejected with nobody to handle it.
        if let Err(err) = self.request.next(max_steps as usize, on_delivery) {
            pending.settle(Err(to_napi(err)));
        }
        Ok(promise)
    }

    /// Asks for `tokens` more tokens without waiting for them (to keep some generated ahead).
    #[napi]
    pub fn ask(&self, tokens: u32) {
        self.request.want(tokens as usize);
    }

    /// Ends the generation before its next token; it finishes with stopReason 'abort'.
    #[napi]
    pub fn cancel(&self) {
        self.request.cancel();
    }

    /// The final result, once `next` has reported `done`.
    #[napi]
    pub fn result(&self) -> napi::Result<GenerateOutput> {
        let output = self
            .request
            .outcome()
            .ok_or_else(|| coded("ERR_INTERNAL", "the generation has not finished"))?
            .map_err(to_napi)?;
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        Ok(GenerateOutput {
            ids: output.ids,
            new_ids: output.new_ids,
            text: output.text,
            completion: output.completion,
            stop_reason: output.stop_reason.map(|r| r.as_str().to_string()),
            scores: output.scores.map(|scores| scores.into_iter().map(f64::from).collect()),
            timings: GenerateTimings {
                prompt_tokens: output.timings.prompt_tokens as u32,
                prompt_ms: ms(output.timings.prompt),
                generated_tokens: output.timings.generated_tokens as u32,
                generated_ms: ms(output.timings.generated),
            },
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

/// Steps as JS receives them, each alternative with its token's text. Runs on the thread that
/// delivers them (the scheduler's), not on the JS thread.
fn to_js_steps(tokenizer: &nexttoken::Tokenizer, delivery: Delivery) -> nexttoken::Result<GenerateSteps> {
    let steps = delivery
        .steps
        .into_iter()
        .map(|step| to_js_step(tokenizer, step))
        .collect::<nexttoken::Result<_>>()?;
    Ok(GenerateSteps { steps, done: delivery.done })
}

fn to_js_step(tokenizer: &nexttoken::Tokenizer, step: Step) -> nexttoken::Result<GenerateStep> {
    let alternatives = match step.alternatives.is_empty() {
        true => None,
        false => Some(scored_tokens(tokenizer, &step.alternatives)?),
    };
    Ok(GenerateStep {
        id: step.id,
        text: step.text,
        p: step.p as f64,
        logprob: step.logprob as f64,
        score: step.score.map(f64::from),
        alternatives,
    })
}
