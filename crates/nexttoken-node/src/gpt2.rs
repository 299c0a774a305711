//! `NativeGpt2`: a loaded GPT-2 (the core's `Gpt2`: weights, tokenizer, configs and the scheduler
//! that batches its generations), shared by every call made on it until `dispose()`.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use napi::bindgen_prelude::{Float32Array, Object, Uint32Array, Unknown};
use napi::Env;
use napi_derive::napi;
use nexttoken::{Gpt2, LoadOptions, Positions, Pretrained, Reading, SchedulerOptions, Session, WeightDtype};

use crate::allocator::return_free_memory;
use crate::call::NativeCall;
use crate::errors::{caught, disposed, guarded, quietly};
use crate::options::{call_options, generation_defaults, NativeLimits, NativeSchedulerOptions};
use crate::outputs::{ModelConfig, ScoredText, TokenScore};
use crate::session::NativeSession;
use crate::task::{on_own_thread, on_task_thread};
use crate::tokenizer::NativeTokenizer;

#[napi]
pub struct NativeGpt2 {
    /// None once disposed. Running calls hold their own Arc, so they finish undisturbed.
    gpt2: RwLock<Option<Arc<Gpt2>>>,
    /// Where it runs, as the load options named it.
    device: String,
}

/// Loads the GPT-2 in directory `path` onto `device` ('cpu', 'cuda', 'metal') with its weights
/// in `dtype` ('fp32', 'bf16', 'fp16', 'q8', 'q4'), its packed matrices found in or recorded to
/// `packed_cache_dir`, each absent for the core's default, and a scheduler that batches its
/// generations.
#[napi(ts_return_type = "Promise<NativeGpt2>")]
pub fn load_gpt2<'env>(
    env: &'env Env,
    path: String,
    device: Option<String>,
    dtype: Option<String>,
    packed_cache_dir: Option<String>,
    scheduler: NativeSchedulerOptions,
) -> napi::Result<Object<'env>> {
    // On a thread of its own, which ends with the load: mimalloc keeps freed memory in the heap
    // of the thread that allocated it, so loads on long-lived threads left each holding a
    // model's worth after dispose() (see docs/reliability.md).
    let load = move || {
        let options = LoadOptions {
            device,
            dtype: dtype.as_deref().map(WeightDtype::parse).transpose()?,
            packed_cache_dir: packed_cache_dir.map(PathBuf::from),
            ..LoadOptions::default()
        };
        let gpt2 = Gpt2::load(&path, &options, SchedulerOptions::try_from(scheduler)?);
        return_free_memory(); // the buffers the file was read through
        Ok((gpt2?, options.device_name().to_string()))
    };
    caught(|| {
        on_own_thread(env, "nexttoken-load", load, |(gpt2, device)| NativeGpt2 {
            gpt2: RwLock::new(Some(Arc::new(gpt2))),
            device,
        })
    })
}

#[napi]
impl NativeGpt2 {
    #[napi(getter)]
    pub fn config(&self) -> napi::Result<ModelConfig> {
        caught(|| Ok(ModelConfig::from(self.pretrained()?.config())))
    }

    /// Where the model runs ('cpu', 'cuda', 'metal').
    #[napi(getter)]
    pub fn device(&self) -> String {
        self.device.clone()
    }

    /// The dtype the weight matrices are held in ('fp32', 'bf16', 'fp16', 'q8', 'q4').
    #[napi(getter)]
    pub fn dtype(&self) -> napi::Result<String> {
        caught(|| Ok(self.pretrained()?.network.dtype().name().to_string()))
    }

    /// What `generate` uses for each option the call leaves unset: the model directory's
    /// `generation_config.json` (else config.json's special tokens) over transformers' defaults.
    #[napi(getter, ts_return_type = "Record<string, unknown>")]
    pub fn generation_config(&self) -> napi::Result<serde_json::Value> {
        caught(|| generation_defaults(&self.pretrained()?.generation_config))
    }

    /// Most generations the scheduler decodes together (the load option, or the core's default).
    #[napi(getter)]
    pub fn max_batch_size(&self) -> napi::Result<u32> {
        caught(|| Ok(self.gpt2()?.max_batch_size() as u32))
    }

    #[napi(getter)]
    pub fn tokenizer(&self) -> napi::Result<NativeTokenizer> {
        caught(|| Ok(NativeTokenizer::new(self.pretrained()?.tokenizer.clone())))
    }

    /// Logits for the last position (`allPositions` false) or every position, flat row-major.
    #[napi(ts_return_type = "Promise<Float32Array>")]
    pub fn logits<'env>(
        &self,
        env: &'env Env,
        ids: Uint32Array,
        all_positions: bool,
    ) -> napi::Result<Object<'env>> {
        caught(|| {
            let (pretrained, ids) = (self.pretrained()?, ids.to_vec());
            let positions = if all_positions { Positions::All } else { Positions::Last };
            // Float32Array::new hands the Vec to JS without a copy.
            on_task_thread(env, move || pretrained.logits(&ids, positions), Float32Array::new)
        })
    }

    /// The next-token distribution: softmax of the last position's logits.
    #[napi(ts_return_type = "Promise<Float32Array>")]
    pub fn probabilities<'env>(&self, env: &'env Env, ids: Uint32Array) -> napi::Result<Object<'env>> {
        caught(|| {
            let (pretrained, ids) = (self.pretrained()?, ids.to_vec());
            on_task_thread(env, move || pretrained.probabilities(&ids), Float32Array::new)
        })
    }

    /// The `k` most likely next tokens, best first.
    #[napi(ts_return_type = "Promise<TokenScore[]>")]
    pub fn top_k<'env>(&self, env: &'env Env, ids: Uint32Array, k: u32) -> napi::Result<Object<'env>> {
        caught(|| {
            let (pretrained, ids) = (self.pretrained()?, ids.to_vec());
            let top_k =
                move || Ok(pretrained.top_k(&ids, k as usize)?.into_iter().map(TokenScore::from).collect());
            on_task_thread(env, top_k, |scores: Vec<TokenScore>| scores)
        })
    }

    /// How likely `ids` is, token by token, with the `topK` most likely tokens at each position.
    #[napi(ts_return_type = "Promise<ScoredText>")]
    pub fn score<'env>(&self, env: &'env Env, ids: Uint32Array, top_k: u32) -> napi::Result<Object<'env>> {
        caught(|| {
            let (pretrained, ids) = (self.pretrained()?, ids.to_vec());
            on_task_thread(
                env,
                move || Ok(ScoredText::from(pretrained.score(&ids, top_k as usize)?)),
                |scored| scored,
            )
        })
    }

    /// Refuses an input of `length` (UTF-16 code units of a text, or token ids when `text` is
    /// false) that `limits` or the model's context cannot take, before it is tokenized.
    #[napi]
    pub fn check_input(&self, length: u32, text: bool, limits: Option<NativeLimits>) -> napi::Result<()> {
        let gpt2 = self.gpt2()?;
        guarded(|| gpt2.check_input(length as usize, text, limits.map(Into::into)))
    }

    /// Token ids of a model input, on a task thread (a long text takes milliseconds to
    /// tokenize); refused by its byte length first.
    #[napi(ts_return_type = "Promise<Uint32Array>")]
    pub fn encode_input<'env>(&self, env: &'env Env, text: String) -> napi::Result<Object<'env>> {
        let pretrained = self.pretrained()?;
        on_task_thread(env, move || pretrained.encode_input(&text), Uint32Array::new)
    }

    /// Refuses options a stream cannot take (beams, several continuations), as `generate` with
    /// `stream` would, before the prompt is tokenized.
    #[napi]
    pub fn check_stream(
        &self,
        #[napi(ts_arg_type = "Record<string, unknown>")] options: Unknown,
    ) -> napi::Result<()> {
        caught(|| {
            let (gpt2, options) = (self.gpt2()?, call_options(options)?);
            guarded(|| gpt2.check_stream(options))
        })
    }

    /// Starts a `generate` call on `prompts` (see the core's `Gpt2::start`: beam search or a
    /// generation per prompt and continuation, decided there), read as a `stream` or for its
    /// results, within the caller's `limits` too.
    #[napi]
    pub fn generate(
        &self,
        prompts: Vec<Uint32Array>,
        #[napi(ts_arg_type = "Record<string, unknown>")] options: Unknown,
        stream: bool,
        limits: Option<NativeLimits>,
    ) -> napi::Result<NativeCall> {
        caught(|| {
            let (gpt2, options) = (self.gpt2()?, call_options(options)?);
            let prompts = prompts.iter().map(|ids| ids.to_vec()).collect();
            let reading = if stream { Reading::Stream } else { Reading::Results };
            let call = guarded(|| gpt2.start(prompts, options, reading, limits.map(Into::into)))?;
            Ok(NativeCall::new(call))
        })
    }

    /// A new, empty session (see `NativeSession`).
    #[napi]
    pub fn session(&self) -> napi::Result<NativeSession> {
        caught(|| {
            let gpt2 = self.gpt2()?;
            let session = Session::new(gpt2.pretrained().clone());
            Ok(NativeSession::new(gpt2, session))
        })
    }

    /// Releases the weights once calls already running have finished; later calls fail with
    /// ERR_DISPOSED.
    #[napi]
    pub fn dispose(&self) -> napi::Result<()> {
        caught(|| {
            self.release();
            Ok(())
        })
    }

    #[napi(getter)]
    pub fn disposed(&self) -> napi::Result<bool> {
        caught(|| Ok(self.gpt2.read().map(|gpt2| gpt2.is_none()).unwrap_or(true)))
    }
}

/// A model the garbage collector takes without dispose(): released the same way.
impl Drop for NativeGpt2 {
    fn drop(&mut self) {
        quietly(|| self.release());
    }
}

impl NativeGpt2 {
    /// The weights go once calls already running have finished.
    fn release(&self) {
        let released = self.gpt2.write().map(|mut gpt2| gpt2.take()).ok().flatten();
        if released.is_some() {
            drop(released);
            return_free_memory();
        }
    }

    fn gpt2(&self) -> napi::Result<Arc<Gpt2>> {
        let gpt2 = self.gpt2.read().map_err(|_| disposed())?;
        gpt2.clone().ok_or_else(disposed)
    }

    fn pretrained(&self) -> napi::Result<Arc<Pretrained>> {
        Ok(self.gpt2()?.pretrained().clone())
    }
}
