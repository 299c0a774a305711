//! A loaded GPT-2 and the scheduler that runs its generations: what an application holds. Each
//! model gets exactly one scheduler, so that every generation on it shares its batched forward
//! passes (a second scheduler would split them and compete for the same cores).

use std::sync::Arc;

use crate::error::Result;
use crate::generation::{CallOptions, GenerateOptions, Generation, Limits, Output};
use crate::load::LoadOptions;
use crate::pretrained::Pretrained;
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

    /// Whether a call may start `prompts` generations (or beam searches) with `call`, the longest
    /// prompt `prompt_len` tokens, under `limits` (tightening `Limits::HARD`): checked before a
    /// batch starts any of them, so that a call asking for too much is refused before it
    /// allocates anything, the JS rows it would create included.
    pub fn admit(
        &self,
        call: CallOptions,
        prompts: usize,
        prompt_len: usize,
        limits: Option<Limits>,
    ) -> Result<()> {
        let options = GenerateOptions::resolve(call, &self.pretrained.generation_config);
        let config = self.pretrained.config();
        options.validate(config.vocab_size)?;
        let limits = limits.unwrap_or(Limits::HARD).within_hard();
        limits.admit(&options, prompts, prompt_len, config, self.max_batch_size())
    }

    /// Whether an input of `len` may be tokenized and run: `limits`' `max_input_length`, and for
    /// a text (`len` its UTF-16 code units, never more than its UTF-8 bytes) the model's
    /// `max_input_bytes`. Checked before tokenizing, which takes seconds for megabytes.
    pub fn check_input(&self, len: usize, text: bool, limits: Option<Limits>) -> Result<()> {
        limits.unwrap_or(Limits::HARD).within_hard().check_input_length(len)?;
        match text {
            true => self.pretrained.check_input_bytes(len),
            false => Ok(()),
        }
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
