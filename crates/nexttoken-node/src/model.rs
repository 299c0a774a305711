//! `NativeModel`: a loaded GPT-2 shared by every call made on it until `dispose()`.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use napi::bindgen_prelude::{AsyncTask, Uint32Array};
use napi_derive::napi;

use crate::errors::{disposed, guarded, to_napi};
use crate::generation::{NativeGenerateOptions, NativeGeneration};
use crate::tasks::{Logits, Scores, TopK};
use crate::tokenizer::NativeTokenizer;
use nexttoken::{CallOptions, GenerateOptions, Scheduler, SchedulerOptions};

/// `config.json`, camelCased.
#[napi(object)]
pub struct ModelConfig {
    pub model_type: String,
    pub n_layer: u32,
    pub n_head: u32,
    pub n_embd: u32,
    pub n_inner: u32,
    pub n_positions: u32,
    pub vocab_size: u32,
    pub layer_norm_epsilon: f64,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
}

/// What `generate` uses for each option the call leaves unset: the model directory's
/// `generation_config.json` (else config.json's special tokens) over transformers' defaults.
#[napi(object)]
pub struct GenerationDefaults {
    /// Null: 20 new tokens (transformers adds its default of 20 to the prompt length).
    pub max_length: Option<u32>,
    pub max_new_tokens: Option<u32>,
    pub do_sample: bool,
    pub temperature: f64,
    pub top_k: u32,
    pub top_p: f64,
    pub min_p: Option<f64>,
    pub repetition_penalty: f64,
    pub no_repeat_ngram_size: u32,
    pub eos_token_id: Vec<u32>,
    pub pad_token_id: Option<u32>,
    pub bos_token_id: Option<u32>,
    pub min_length: u32,
    pub min_new_tokens: Option<u32>,
    pub bad_words_ids: Vec<Vec<u32>>,
    #[napi(ts_type = "Array<[number[], number]>")]
    pub sequence_bias: Vec<(Vec<u32>, f64)>,
    pub suppress_tokens: Vec<u32>,
    pub begin_suppress_tokens: Vec<u32>,
    pub forced_eos_token_id: Vec<u32>,
    pub typical_p: f64,
    pub epsilon_cutoff: f64,
    pub eta_cutoff: f64,
    pub renormalize_logits: bool,
    pub stop_strings: Vec<String>,
}

/// A candidate next token.
#[napi(object)]
pub struct TokenScore {
    pub id: u32,
    /// The token's text, as `tokenizer.decode([id])`.
    pub token: String,
    pub p: f64,
    pub logprob: f64,
}

/// A loaded model and the scheduler that batches its generations.
pub struct Loaded {
    pub engine: Arc<nexttoken::Pretrained>,
    pub scheduler: Scheduler,
}

#[napi]
pub struct NativeModel {
    /// None once disposed. Running calls hold their own Arc, so they finish undisturbed.
    loaded: RwLock<Option<Loaded>>,
}

#[napi]
impl NativeModel {
    #[napi(getter)]
    pub fn config(&self) -> napi::Result<ModelConfig> {
        let engine = self.engine()?;
        let c = engine.config();
        Ok(ModelConfig {
            model_type: "gpt2".into(),
            n_layer: c.n_layer as u32,
            n_head: c.n_head as u32,
            n_embd: c.n_embd as u32,
            n_inner: c.n_inner as u32,
            n_positions: c.n_positions as u32,
            vocab_size: c.vocab_size as u32,
            layer_norm_epsilon: c.layer_norm_epsilon,
            bos_token_id: c.bos_token_id,
            eos_token_id: c.eos_token_id,
        })
    }

    #[napi(getter)]
    pub fn generation_config(&self) -> napi::Result<GenerationDefaults> {
        let engine = self.engine()?;
        let model = &engine.generation_config;
        let d = GenerateOptions::resolve(CallOptions::default(), model);
        // f32 options shown as the decimal they were written as (0.7, not 0.699999988079071).
        let number = |x: f32| x.to_string().parse::<f64>().unwrap_or(x as f64);
        Ok(GenerationDefaults {
            max_length: d.max_length.map(|n| n as u32),
            max_new_tokens: d.max_new_tokens.map(|n| n as u32),
            do_sample: d.do_sample,
            temperature: number(d.temperature),
            top_k: d.top_k as u32,
            top_p: number(d.top_p),
            min_p: d.min_p.map(number),
            repetition_penalty: number(d.repetition_penalty),
            no_repeat_ngram_size: d.no_repeat_ngram_size as u32,
            eos_token_id: d.eos_token_ids,
            pad_token_id: d.pad_token_id,
            bos_token_id: model.bos_token_id,
            min_length: d.min_length as u32,
            min_new_tokens: d.min_new_tokens.map(|n| n as u32),
            bad_words_ids: d.bad_words_ids,
            sequence_bias: d.sequence_bias.into_iter().map(|(ids, bias)| (ids, number(bias))).collect(),
            suppress_tokens: d.suppress_tokens,
            begin_suppress_tokens: d.begin_suppress_tokens,
            forced_eos_token_id: d.forced_eos_token_ids,
            typical_p: number(d.typical_p),
            epsilon_cutoff: number(d.epsilon_cutoff),
            eta_cutoff: number(d.eta_cutoff),
            renormalize_logits: d.renormalize_logits,
            stop_strings: d.stop_strings,
        })
    }

    #[napi(getter)]
    pub fn tokenizer(&self) -> napi::Result<NativeTokenizer> {
        Ok(NativeTokenizer { inner: self.engine()?.tokenizer.clone() })
    }

    /// Logits for the last position (`allPositions` false) or every position, flat row-major.
    #[napi(ts_return_type = "Promise<Float32Array>")]
    pub fn logits(&self, ids: Uint32Array, all_positions: bool) -> napi::Result<AsyncTask<Logits>> {
        let scores = if all_positions { Scores::AllLogits } else { Scores::LastLogits };
        Ok(AsyncTask::new(Logits { engine: self.engine()?, ids: ids.to_vec(), scores }))
    }

    /// The next-token distribution: softmax of the last position's logits.
    #[napi(ts_return_type = "Promise<Float32Array>")]
    pub fn probabilities(&self, ids: Uint32Array) -> napi::Result<AsyncTask<Logits>> {
        let scores = Scores::Probabilities;
        Ok(AsyncTask::new(Logits { engine: self.engine()?, ids: ids.to_vec(), scores }))
    }

    /// The `k` most likely next tokens, best first.
    #[napi(ts_return_type = "Promise<TokenScore[]>")]
    pub fn top_k(&self, ids: Uint32Array, k: u32) -> napi::Result<AsyncTask<TopK>> {
        Ok(AsyncTask::new(TopK { engine: self.engine()?, ids: ids.to_vec(), k: k as usize }))
    }

    /// Prepares a generation for the prompt `ids`; tokens come from its `next()`.
    #[napi]
    pub fn start_generation(
        &self,
        ids: Uint32Array,
        options: NativeGenerateOptions,
    ) -> napi::Result<NativeGeneration> {
        let loaded = self.loaded.read().map_err(|_| disposed())?;
        let loaded = loaded.as_ref().ok_or_else(disposed)?;
        let engine = loaded.engine.clone();
        let generation = guarded(|| nexttoken::Generation::new(engine, ids.to_vec(), options.into()))?;
        let request = loaded.scheduler.submit(generation).map_err(to_napi)?;
        Ok(NativeGeneration::new(request, loaded.engine.tokenizer.clone()))
    }

    /// Releases the weights once calls already running have finished; later calls fail with
    /// ERR_DISPOSED.
    #[napi]
    pub fn dispose(&self) {
        if let Ok(mut loaded) = self.loaded.write() {
            loaded.take();
        }
    }

    #[napi(getter)]
    pub fn disposed(&self) -> bool {
        self.loaded.read().map(|loaded| loaded.is_none()).unwrap_or(true)
    }
}

impl NativeModel {
    pub(crate) fn new(loaded: Loaded) -> Self {
        NativeModel { loaded: RwLock::new(Some(loaded)) }
    }

    fn engine(&self) -> napi::Result<Arc<nexttoken::Pretrained>> {
        let loaded = self.loaded.read().map_err(|_| disposed())?;
        Ok(loaded.as_ref().ok_or_else(disposed)?.engine.clone())
    }
}

/// How the model's scheduler batches generations; an absent field takes the core's default.
#[napi(object)]
#[derive(Clone)]
pub struct NativeSchedulerOptions {
    /// A number rather than u32, so that 2^32 + 1 is refused instead of wrapping to 1.
    pub max_batch_size: Option<f64>,
    /// Milliseconds; `Infinity`: never.
    pub stream_idle_timeout_ms: Option<f64>,
    /// `Infinity`: no limit.
    pub max_queue_length: Option<f64>,
}

impl TryFrom<NativeSchedulerOptions> for SchedulerOptions {
    type Error = nexttoken::Error;

    fn try_from(js: NativeSchedulerOptions) -> nexttoken::Result<Self> {
        let defaults = SchedulerOptions::default();
        let idle_timeout = match js.stream_idle_timeout_ms {
            None => defaults.idle_timeout,
            Some(ms) if ms == f64::INFINITY => None,
            Some(ms) => Some(Duration::try_from_secs_f64(ms / 1e3).map_err(|_| {
                nexttoken::Error::InvalidArg(format!(
                    "streamIdleTimeoutMs must be a number of milliseconds above 0, or Infinity; got {ms}"
                ))
            })?),
        };
        let max_queue_length = match js.max_queue_length {
            None => defaults.max_queue_length,
            Some(n) if n == f64::INFINITY => None,
            Some(n) => Some(n as usize),
        };
        Ok(SchedulerOptions {
            // `as` saturates: a huge number stays huge and the core refuses it.
            max_batch_size: js.max_batch_size.map_or(defaults.max_batch_size, |n| n as usize),
            idle_timeout,
            max_queue_length,
        })
    }
}

/// Loads the GPT-2 in directory `path` onto `device` ('cpu', 'cuda', 'metal') with a scheduler
/// that batches its generations.
#[napi(ts_return_type = "Promise<NativeModel>")]
pub fn load_model(
    path: String,
    device: String,
    scheduler: NativeSchedulerOptions,
) -> AsyncTask<crate::tasks::LoadModel> {
    AsyncTask::new(crate::tasks::LoadModel { path, device, scheduler })
}

/// Scores with each token's text (`decode([id])`), as JS receives them.
pub(crate) fn scored_tokens(
    tokenizer: &nexttoken::Tokenizer,
    scores: &[nexttoken::TokenScore],
) -> nexttoken::Result<Vec<TokenScore>> {
    scores
        .iter()
        .map(|s| {
            let token = tokenizer.decode(&[s.id])?;
            Ok(TokenScore { id: s.id, token, p: s.p as f64, logprob: s.logprob as f64 })
        })
        .collect()
}
