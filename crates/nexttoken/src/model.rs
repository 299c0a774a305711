//! A loaded GPT-2 and the scheduler that runs its generations: what an application holds. Each
//! model gets exactly one scheduler, so that every generation on it shares its batched forward
//! passes (a second scheduler would split them and compete for the same cores).

use std::sync::Arc;

use crate::error::{panic_message, Error, Result};
use crate::generation::{beam_search, CallOptions, GenerateOptions, Generation, Limits, Output};
use crate::load::LoadOptions;
use crate::pretrained::Pretrained;
use crate::scheduler::{Request, Scheduler, SchedulerOptions};
use crate::session::Session;

pub struct Gpt2 {
    pretrained: Arc<Pretrained>,
    scheduler: Scheduler,
}

/// How the caller takes the tokens of a `generate` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// The results once it ends (`generate`, `generateBatch`; a callback may see each token).
    Results,
    /// One sequence, token by token (`stream`): neither beams nor several continuations.
    Stream,
}

/// A `generate` call, started by `Gpt2::start`.
#[allow(clippy::large_enum_variant)] // one per call: not worth a box
pub enum Call {
    /// Greedy or sampled: one running generation per prompt and continuation, in the order of
    /// the results (prompt by prompt, the continuations of a prompt together). Each delivers its
    /// tokens (`Request::next`) and is cancelled on its own (`Request::cancel`, or dropped).
    Generations(Vec<Request>),
    /// Beam search (the resolved `numBeams` is above 1): not started; `BeamSearches::run`.
    Beams(BeamSearches),
}

/// The beam searches of a call, one per prompt.
pub struct BeamSearches {
    pretrained: Arc<Pretrained>,
    prompts: Vec<Vec<u32>>,
    call: CallOptions,
}

impl BeamSearches {
    /// Runs the searches (each prompt's on a thread of its own, as they are independent) and
    /// blocks until all have ended: every prompt's best sequences, prompt by prompt, best first.
    /// Beam search is not batched with the scheduler's generations: call it on a thread that may
    /// block for as long as the search takes.
    pub fn run(self) -> Result<Vec<Output>> {
        let BeamSearches { pretrained, prompts, call } = self;
        let results: Vec<Result<Vec<Output>>> = std::thread::scope(|scope| {
            let searches: Vec<_> = prompts
                .into_iter()
                .map(|prompt| {
                    let (pretrained, call) = (pretrained.clone(), call.clone());
                    scope.spawn(move || beam_search(pretrained, prompt, call))
                })
                .collect();
            searches
                .into_iter()
                .map(|search| {
                    search.join().unwrap_or_else(|panic| Err(Error::Internal(panic_message(panic.as_ref()))))
                })
                .collect()
        });
        Ok(results.into_iter().collect::<Result<Vec<_>>>()?.into_iter().flatten().collect())
    }
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

    /// Whether a call may start `prompts` generations (or beam searches) with the resolved
    /// `options`, the longest prompt `prompt_len` tokens, under `limits` (tightening
    /// `Limits::HARD`): checked before a call starts any of them, so that a call asking for too
    /// much is refused before it allocates anything.
    fn admit(
        &self,
        options: &GenerateOptions,
        prompts: usize,
        prompt_len: usize,
        limits: Option<Limits>,
    ) -> Result<()> {
        let config = self.pretrained.config();
        options.validate(config.vocab_size)?;
        let limits = limits.unwrap_or(Limits::HARD).within_hard();
        limits.admit(options, prompts, prompt_len, config, self.max_batch_size())
    }

    /// Whether `call` may be read as a stream (not beams, not several continuations): what
    /// `start` refuses for `Reading::Stream`, checked before the prompt is at hand.
    pub fn check_stream(&self, call: CallOptions) -> Result<()> {
        refuse_unreadable(
            &GenerateOptions::resolve(call, &self.pretrained.generation_config),
            Reading::Stream,
        )
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

    /// Starts a `generate` call on `prompts` with `call`, as `reading` takes it, within `limits`
    /// (tightening `Limits::HARD`). Every kind of generation starts here, decided on the resolved
    /// options: beam search when `numBeams` is above 1; else a generation per prompt and
    /// continuation (`numReturnSequences`), each row's lengths counted from the longest prompt
    /// (transformers' left-padded batch) and each continuation seeded from the seed and its index.
    /// The continuations of a prompt read it once (the others start from a copy of the first
    /// one's cache, `Scheduler::submit_forks`).
    /// Refused before anything starts: options past what transformers or the limits accept, and
    /// a stream of beams or of several continuations. Never blocks.
    pub fn start(
        &self,
        prompts: Vec<Vec<u32>>,
        call: CallOptions,
        reading: Reading,
        limits: Option<Limits>,
    ) -> Result<Call> {
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let options = GenerateOptions::resolve(call.clone(), &self.pretrained.generation_config);
        self.admit(&options, prompts.len(), longest, limits)?;
        refuse_unreadable(&options, reading)?;
        if options.num_beams > 1 {
            return Ok(Call::Beams(BeamSearches { pretrained: self.pretrained.clone(), prompts, call }));
        }
        let mut generations = Vec::with_capacity(prompts.len() * options.num_return_sequences);
        for prompt in prompts {
            let continuations = (0..options.num_return_sequences).map(|sequence_index| {
                let row = CallOptions {
                    padded_length: Some(longest),
                    sequence_index: Some(sequence_index),
                    ..call.clone()
                };
                Generation::new(self.pretrained.clone(), prompt.clone(), row)
            });
            // (An error here, before any row runs, drops the rows started so far: that cancels
            // them.) The continuations read the prompt once; a row the queue has no room for
            // comes back ended with ERR_OVERLOADED, so the caller cancels the others as for any
            // failed row.
            let continuations = continuations.collect::<Result<Vec<_>>>()?;
            generations.extend(self.scheduler.submit_forks(continuations));
        }
        Ok(Call::Generations(generations))
    }

    /// Queues a generation that continues `session`'s text from its cache.
    pub fn continue_session(&self, session: &Session, options: CallOptions) -> Result<Request> {
        self.scheduler.submit(session.generation(options)?)
    }

    /// Generates from `prompts` and blocks until the end: every result of the call, as
    /// `Call` orders them. For Rust callers that may block a thread (tools, tests).
    pub fn generate(&self, prompts: Vec<Vec<u32>>, options: CallOptions) -> Result<Vec<Output>> {
        match self.start(prompts, options, Reading::Results, None)? {
            Call::Beams(searches) => searches.run(),
            Call::Generations(requests) => requests.iter().map(Request::wait).collect(),
        }
    }
}

/// Refuses a call `reading` cannot take: a stream reads one sequence token by token.
fn refuse_unreadable(options: &GenerateOptions, reading: Reading) -> Result<()> {
    if reading == Reading::Stream && options.num_beams > 1 {
        return Err(Error::InvalidArg("beam search gives whole sequences: use generate, not stream".into()));
    }
    if reading == Reading::Stream && options.num_return_sequences > 1 {
        return Err(Error::InvalidArg(
            "numReturnSequences gives several results: use generate or generateBatch, not stream or a session".into(),
        ));
    }
    Ok(())
}
