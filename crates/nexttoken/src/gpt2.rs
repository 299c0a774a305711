//! A loaded GPT-2 and the scheduler that runs its generations: what an application holds. Each
//! model gets exactly one scheduler, so that every generation on it shares its batched forward
//! passes (a second scheduler would split them and compete for the same cores).

use std::sync::Arc;

use crate::error::Result;
use crate::generation::{CallOptions, Generation, Output};
use crate::pretrained::{LoadOptions, Pretrained};
use crate::scheduler::{Request, Scheduler, SchedulerOptions};
use crate::session::Session;

pub struct Gpt2 {
    pretrained: Arc<Pretrained>,
    scheduler: Scheduler,
}

impl Gpt2 {
    /// Loads the model directory `name_or_path` as `options` say.
    pub fn load(name_or_path: &str, options: &LoadOptions, scheduler: SchedulerOptions) -> Result<Self> {
        scheduler.validate()?; // before the weights are read: a bad option fails fast
        let pretrained = Arc::new(Pretrained::load_with(name_or_path, options)?);
        let scheduler = Scheduler::new(pretrained.clone(), scheduler)?;
        Ok(Gpt2 { pretrained, scheduler })
    }

    /// The weights, tokenizer and configs, for single forward passes (logits, top-k).
    pub fn pretrained(&self) -> &Arc<Pretrained> {
        &self.pretrained
    }

    /// Most generations its scheduler decodes together.
    pub fn max_batch_size(&self) -> usize {
        self.scheduler.max_batch_size()
    }

    /// Queues a generation of `prompt`; its tokens come from the request's `next`.
    pub fn start(&self, prompt: Vec<u32>, options: CallOptions) -> Result<Request> {
        self.scheduler.submit(Generation::new(self.pretrained.clone(), prompt, options)?)
    }

    /// Queues a generation that continues `session`'s text from its cache.
    pub fn continue_session(&self, session: &Session, options: CallOptions) -> Result<Request> {
        self.scheduler.submit(session.generation(options)?)
    }

    /// Generates from `prompt` and blocks until the end: for Rust callers that may block a
    /// thread (tools, tests).
    pub fn generate(&self, prompt: Vec<u32>, options: CallOptions) -> Result<Output> {
        self.scheduler.generate(Generation::new(self.pretrained.clone(), prompt, options)?)
    }
}
