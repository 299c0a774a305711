//! The async jobs: each runs `compute` on a libuv worker thread and converts its output to JS
//! values in `resolve` on the JS thread.

use std::sync::Arc;

use napi::bindgen_prelude::Float32Array;
use napi::{Env, Task};
use nexttoken::{Positions, Pretrained, Scheduler, SchedulerOptions};

use crate::errors::guarded;
use crate::model::{scored_tokens, Loaded, NativeModel, NativeSchedulerOptions, TokenScore};
use crate::tokenizer::NativeTokenizer;

pub struct LoadTokenizer {
    pub path: String,
}

impl Task for LoadTokenizer {
    type Output = NativeTokenizer;
    type JsValue = NativeTokenizer;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        guarded(|| NativeTokenizer::from_dir(&self.path))
    }

    fn resolve(&mut self, _: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(output)
    }
}

pub struct LoadModel {
    pub path: String,
    pub device: String,
    pub scheduler: NativeSchedulerOptions,
}

impl Task for LoadModel {
    type Output = Loaded;
    type JsValue = NativeModel;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        guarded(|| {
            let options = SchedulerOptions::try_from(self.scheduler.clone())?;
            let engine = Arc::new(Pretrained::load(&self.path, &self.device)?);
            let scheduler = Scheduler::new(engine.clone(), options)?;
            Ok(Loaded { engine, scheduler })
        })
    }

    fn resolve(&mut self, _: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(NativeModel::new(output))
    }
}

/// What a `Logits` task returns for its ids.
pub enum Scores {
    LastLogits,
    AllLogits,
    Probabilities,
}

pub struct Logits {
    pub engine: Arc<Pretrained>,
    pub ids: Vec<u32>,
    pub scores: Scores,
}

impl Task for Logits {
    type Output = Vec<f32>;
    type JsValue = Float32Array;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        guarded(|| match self.scores {
            Scores::LastLogits => self.engine.logits(&self.ids, Positions::Last),
            Scores::AllLogits => self.engine.logits(&self.ids, Positions::All),
            Scores::Probabilities => self.engine.probabilities(&self.ids),
        })
    }

    fn resolve(&mut self, _: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(Float32Array::new(output)) // hands the Vec to JS without a copy
    }
}

pub struct TopK {
    pub engine: Arc<Pretrained>,
    pub ids: Vec<u32>,
    pub k: usize,
}

impl Task for TopK {
    type Output = Vec<TokenScore>;
    type JsValue = Vec<TokenScore>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        guarded(|| scored_tokens(&self.engine.tokenizer, &self.engine.top_k(&self.ids, self.k)?))
    }

    fn resolve(&mut self, _: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(output)
    }
}
