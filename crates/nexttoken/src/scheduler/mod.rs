//! Continuous batching: one thread per model decodes every running generation together.
//!
//! Each turn gathers up to `max_batch_size` running sequences and runs one ragged forward pass
//! for all of them (one new token each, or a chunk of a newly admitted prompt), so the weights
//! are read once for the whole batch. A finished sequence leaves at once and a waiting one takes
//! its slot; long prompts enter in chunks so that the others keep decoding meanwhile.
//!
//! Generation is pulled, not pushed: a caller asks for tokens (`Request::next`, `Request::want`)
//! and a sequence takes part in a turn only while it has tokens asked for. So a slow consumer
//! costs no memory, and an abort stops a sequence before any token its caller has not asked for.
//! Waiting costs no thread: tokens reach the caller through a callback (see `request`).
//!
//! What waiting costs: a queued request holds its prompt ids and options, no KV cache and no
//! thread, and takes the first free slot in submission order once its caller asks for tokens;
//! `max_queue_length` bounds how many may wait. A running sequence holds its slot and KV cache
//! until it ends, is cancelled (dropping its `Request` cancels it) or its caller asks for nothing
//! for `idle_timeout`.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::error::{panic_message, Error, Result};
use crate::generation::{Generation, Output};
use crate::network::KvCache;
use crate::pretrained::Pretrained;

mod prefixes;
mod request;

use prefixes::PrefixStore;
use request::Shared;
pub use request::{Delivery, OnDelivery, Request};

/// Prompt tokens one sequence may feed per forward pass while others are decoding.
const PREFILL_CHUNK: usize = 128;

/// How many sequences share a forward pass unless the caller says otherwise.
pub const DEFAULT_MAX_BATCH_SIZE: usize = 16;
/// The largest `max_batch_size` accepted: past it a forward pass's activations grow large and
/// each token waits for the whole batch.
pub const MAX_BATCH_SIZE_LIMIT: usize = 1024;
/// How long a running sequence may go without its caller asking for a token. A stream's
/// consumer that stops pulling (or is garbage-collected without its iterator being closed)
/// would otherwise hold its slot and KV cache forever; a minute is far longer than any consumer
/// takes over one token.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Memory for computed prompt prefixes unless the caller says otherwise: a 512-token prefix of
/// gpt2 (124M) takes 38 MB, of gpt2-xl 330 MB.
pub const DEFAULT_PREFIX_CACHE_BYTES: usize = 256 << 20;

/// How a model's scheduler shares its forward passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerOptions {
    /// Most sequences decoded together; more wait for a free slot.
    pub max_batch_size: usize,
    /// A running sequence whose caller asks for no token for this long ends with `Error::Idle`,
    /// freeing its slot and KV cache. None: never.
    pub idle_timeout: Option<Duration>,
    /// Most generations waiting for a slot while `max_batch_size` run: `submit` fails with
    /// `Error::Overloaded` when `max_batch_size + max_queue_length` generations are running or
    /// waiting. None: no limit.
    pub max_queue_length: Option<usize>,
    /// Memory for the KV cache of prompt prefixes already computed, reused by later prompts that
    /// start with the same tokens (see `prefixes`); 0 turns the reuse off.
    pub prefix_cache_bytes: usize,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            max_batch_size: DEFAULT_MAX_BATCH_SIZE,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_queue_length: None,
            prefix_cache_bytes: DEFAULT_PREFIX_CACHE_BYTES,
        }
    }
}

impl SchedulerOptions {
    pub fn validate(&self) -> Result<()> {
        if self.idle_timeout.is_some_and(|t| t.is_zero()) {
            // 0 often means "no timeout" elsewhere; here it would end every stream at once.
            return Err(Error::InvalidArg(
                "streamIdleTimeoutMs must be above 0 (Infinity turns the idle timeout off)".into(),
            ));
        }
        if !(1..=MAX_BATCH_SIZE_LIMIT).contains(&self.max_batch_size) {
            return Err(Error::InvalidArg(format!(
                "maxBatchSize must be an integer from 1 to {MAX_BATCH_SIZE_LIMIT}; got {}",
                self.max_batch_size
            )));
        }
        Ok(())
    }
}

#[allow(clippy::large_enum_variant)] // one `Submit` per request: not worth a box
enum Message {
    Submit(Job),
    /// A caller asked for tokens or cancelled: look at the running sequences again.
    Wake,
    /// The `Scheduler` is gone: finish what was submitted, then end the thread.
    Close,
}

struct Job {
    generation: Generation,
    shared: Arc<Shared>,
    /// Since when the caller has asked for no token (while running).
    idle_since: Option<Instant>,
    /// Given back as the end is reported (so a caller that saw the end can submit again): None
    /// exactly when the job has ended.
    ticket: Option<Ticket>,
    /// Generations of the same prompt (a call's other continuations) held until this one has
    /// read it: each then starts from a copy of its cache (`Batch::release_forks`).
    forks: Vec<Job>,
}

/// Counts a generation among those submitted and not yet ended.
struct Ticket(Arc<AtomicUsize>);

impl Ticket {
    /// Takes a ticket if fewer than `limit` generations are running or waiting.
    fn take(pending: &Arc<AtomicUsize>, limit: usize) -> Result<Self> {
        pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1))
            .map_err(|_| Error::Overloaded(limit))?;
        Ok(Ticket(pending.clone()))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Job {
    /// Delivers the final output once finished (or cancelled) and says whether the job is over.
    fn finish_if_done(&mut self) -> bool {
        if self.has_ended() {
            return true; // failed
        }
        if self.shared.is_cancelled() {
            self.generation.abort();
        }
        if !self.generation.is_finished() {
            return false;
        }
        self.end(self.generation.output());
        true
    }

    fn end(&mut self, outcome: Result<Output>) {
        self.ticket = None;
        self.shared.deliver_outcome(outcome);
    }

    fn has_ended(&self) -> bool {
        self.ticket.is_none()
    }

    fn is_wanted(&self) -> bool {
        self.shared.is_wanted()
    }

    fn fail(&mut self, err: Error) {
        self.generation.abort();
        self.end(Err(err));
    }
}

impl Drop for Job {
    /// A job dropped before its end (the scheduler shut down) still tells its caller.
    fn drop(&mut self) {
        if !self.has_ended() {
            self.fail(Error::Internal("the model's scheduler was shut down".into()));
        }
    }
}

/// Owns a model's scheduler thread. Dropping it lets submitted generations finish (a runtime
/// that goes away drops their `Request`s too, which cancels them), then the thread ends.
pub struct Scheduler {
    messages: Sender<Message>,
    /// Generations submitted and not yet ended (running or waiting for a slot).
    pending: Arc<AtomicUsize>,
    /// Most of them at once: the batch plus the queue.
    max_pending: usize,
    /// Kept for callers that size their own concurrency to the batch (a queue worker's jobs).
    max_batch_size: usize,
}

impl Scheduler {
    pub fn new(pretrained: Arc<Pretrained>, options: SchedulerOptions) -> Result<Self> {
        options.validate()?;
        let (messages, incoming) = channel();
        std::thread::Builder::new()
            .name("nexttoken-scheduler".into())
            .spawn(move || run(&pretrained, incoming, options))
            .map_err(|err| Error::Internal(format!("cannot start the scheduler thread: {err}")))?;
        let max_pending =
            options.max_queue_length.map_or(usize::MAX, |n| n.saturating_add(options.max_batch_size));
        Ok(Scheduler {
            messages,
            pending: Arc::default(),
            max_pending,
            max_batch_size: options.max_batch_size,
        })
    }

    /// Most generations decoded together (`SchedulerOptions::max_batch_size`).
    pub fn max_batch_size(&self) -> usize {
        self.max_batch_size
    }

    /// Queues `generation`; it runs as its caller asks for tokens (`Request::next`). Fails with
    /// `Error::Overloaded` when `max_queue_length` generations are already waiting.
    pub fn submit(&self, generation: Generation) -> Result<Request> {
        let (job, request) = self.job(generation)?;
        // If the thread is gone the message comes back and dropping the job reports the end.
        let _ = self.messages.send(Message::Submit(job));
        Ok(request)
    }

    /// Submits `generations`, all of one prompt (a call's continuations): the first reads it and
    /// every other starts from a copy of its cache of it, so the prompt is read once and each
    /// continuation's numbers depend only on the call. A generation the queue has no room for
    /// comes back as a request that has already ended with `ERR_OVERLOADED`, so that a caller
    /// handles every row alike (cancelling the others when one fails).
    pub fn submit_forks(&self, generations: Vec<Generation>) -> Vec<Request> {
        let mut requests = Vec::with_capacity(generations.len());
        let mut jobs: Vec<Job> = Vec::with_capacity(generations.len());
        for generation in generations {
            match self.job(generation) {
                Ok((job, request)) => {
                    jobs.push(job);
                    requests.push(request);
                }
                Err(err) => requests.push(Request::ended(err, self.messages.clone())),
            }
        }
        if !jobs.is_empty() {
            let mut leader = jobs.remove(0);
            leader.forks = jobs;
            // If the thread is gone the message comes back and dropping the jobs reports the end.
            let _ = self.messages.send(Message::Submit(leader));
        }
        requests
    }

    /// A job for `generation`, holding its place in the queue, and its caller's request:
    /// `ERR_OVERLOADED` when the batch and the queue are full.
    fn job(&self, generation: Generation) -> Result<(Job, Request)> {
        let ticket = Ticket::take(&self.pending, self.max_pending)?;
        let shared = Arc::new(Shared::default());
        let request = Request { shared: shared.clone(), scheduler: self.messages.clone() };
        Ok((Job { generation, shared, idle_since: None, ticket: Some(ticket), forks: Vec::new() }, request))
    }

    /// Submits `generation` and blocks until it ends: for Rust callers that may block a thread
    /// (tools, tests). Node never calls it; it pulls with `Request::next`.
    pub fn generate(&self, generation: Generation) -> Result<Output> {
        self.submit(generation)?.wait()
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.messages.send(Message::Close);
    }
}

/// The sequences the scheduler holds.
#[derive(Default)]
struct Batch {
    running: Vec<Job>,
    waiting: VecDeque<Job>,
    /// The `Scheduler` is gone: end the thread once nothing is left.
    closing: bool,
}

impl Batch {
    fn receive(&mut self, message: Message) {
        match message {
            Message::Submit(job) => self.waiting.push_back(job),
            Message::Wake => {}
            Message::Close => self.closing = true,
        }
    }

    /// Reports and drops finished and cancelled sequences, then fills free slots, in submission
    /// order, with waiting sequences whose callers have asked for tokens. A prompt that shares
    /// its beginning with one still being read waits for it, then starts from its stored prefix.
    /// First, the forks of a sequence that has read its prompt go to the front of the queue.
    fn retire_and_admit(&mut self, max_batch_size: usize, prefixes: &mut PrefixStore) {
        self.release_forks();
        self.waiting.retain_mut(|job| !(job.shared.is_cancelled() && job.finish_if_done()));
        self.running.retain_mut(|job| !job.finish_if_done());
        while self.running.len() < max_batch_size {
            let reading: Vec<&[u32]> = self
                .running
                .iter()
                .filter(|j| j.is_wanted() && j.generation.is_prefilling())
                .map(|j| j.generation.prompt())
                .collect();
            let admissible = |job: &Job| {
                job.is_wanted()
                    && (prefixes.is_off()
                        || !reading
                            .iter()
                            .any(|other| PrefixStore::shares_prefix(job.generation.prompt(), other)))
            };
            let Some(i) = self.waiting.iter().position(admissible) else { break };
            let Some(mut job) = self.waiting.remove(i) else { break };
            // (A fork already holds its prompt's cache: no stored prefix to copy for it.)
            if job.generation.cached_prompt_tokens() == 0 {
                if let Ok(Some(cache)) = prefixes.lookup(job.generation.prompt()) {
                    job.generation.adopt_prefix(cache);
                }
            }
            self.running.push(job);
        }
    }

    /// Hands each sequence's forks, once it has read its prompt, a copy of its cache of it (up
    /// to the last token, which each fork feeds for its own first logits, as a session's
    /// generation does) and puts them at the front of the queue. A sequence that ended before
    /// reading its prompt (cancelled) lets them go as they are, to read it themselves.
    fn release_forks(&mut self) {
        let mut released = Vec::new();
        for job in self.running.iter_mut().chain(self.waiting.iter_mut()) {
            let read = !job.generation.is_prefilling();
            if job.forks.is_empty() || !(read || job.shared.is_cancelled() || job.generation.is_finished()) {
                continue;
            }
            for mut fork in job.forks.drain(..) {
                // A copy that fails (memory) only loses the reuse.
                if let Some(Ok(cache)) = job.generation.copy_of_prompt_kv(fork.generation.prompt()) {
                    fork.generation.adopt_prefix(cache);
                }
                released.push(fork);
            }
        }
        for fork in released.into_iter().rev() {
            self.waiting.push_front(fork);
        }
    }

    /// Ends running sequences idle for longer than `timeout`; returns when the next one would
    /// expire.
    fn expire_idle(&mut self, now: Instant, timeout: Option<Duration>) -> Option<Instant> {
        let timeout = timeout?;
        let mut next_expiry: Option<Instant> = None;
        for job in self.running.iter_mut() {
            if job.is_wanted() || job.generation.is_finished() {
                job.idle_since = None; // a finished one is retired with its own outcome
                continue;
            }
            // A timeout too long to add to an instant never expires.
            let Some(expiry) = job.idle_since.get_or_insert(now).checked_add(timeout) else { continue };
            if expiry <= now {
                job.fail(Error::Idle(timeout));
            } else {
                next_expiry = Some(next_expiry.map_or(expiry, |t| t.min(expiry)));
            }
        }
        next_expiry
    }

    fn is_empty(&self) -> bool {
        self.running.is_empty() && self.waiting.is_empty()
    }
}

fn run(pretrained: &Pretrained, incoming: Receiver<Message>, options: SchedulerOptions) {
    let mut batch = Batch::default();
    let mut prefixes = PrefixStore::new(options.prefix_cache_bytes);
    loop {
        for message in incoming.try_iter() {
            batch.receive(message);
        }
        let now = Instant::now();
        let next_expiry = batch.expire_idle(now, options.idle_timeout);
        batch.retire_and_admit(options.max_batch_size, &mut prefixes);
        if batch.running.iter().any(Job::is_wanted) {
            decode_turn_guarded(pretrained, &mut batch.running, &mut prefixes);
            continue;
        }
        if batch.closing && batch.is_empty() {
            return;
        }
        // Nothing to compute: sleep until a message, or until a sequence's idle time runs out.
        let message = match next_expiry {
            Some(expiry) => match incoming.recv_timeout(expiry.saturating_duration_since(now)) {
                Ok(message) => message,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            },
            None => match incoming.recv() {
                Ok(message) => message,
                Err(_) => return, // no scheduler and no request left
            },
        };
        batch.receive(message);
    }
}

/// `decode_turn`, with a failure (or a panic) ending every sequence of the batch with it.
fn decode_turn_guarded(pretrained: &Pretrained, running: &mut [Job], prefixes: &mut PrefixStore) {
    let turn = catch_unwind(AssertUnwindSafe(|| decode_turn(pretrained, running, prefixes)));
    if let Err(message) =
        turn.map_err(|payload| panic_message(payload.as_ref())).and_then(|r| r.map_err(|e| e.to_string()))
    {
        for job in running.iter_mut() {
            job.fail(Error::Internal(message.clone()));
        }
    }
}

/// One forward pass for every running sequence that has tokens asked for, then a token for each
/// that completed its input.
fn decode_turn(pretrained: &Pretrained, running: &mut [Job], prefixes: &mut PrefixStore) -> Result<()> {
    let mut active: Vec<&mut Job> = running.iter_mut().filter(|job| job.is_wanted()).collect();
    // Chunking a prompt only matters when others are waiting for their next token.
    let chunk = if active.len() == 1 { usize::MAX } else { PREFILL_CHUNK };
    let mut batch: Vec<(&[u32], &mut KvCache)> = Vec::with_capacity(active.len());
    let mut fed = Vec::with_capacity(active.len());
    for (i, job) in active.iter_mut().enumerate() {
        if let Some(input) = job.generation.next_input(chunk) {
            batch.push(input);
            fed.push(i);
        }
    }
    if batch.is_empty() {
        return Ok(()); // every wanted sequence hit a limit; finish_if_done reports them
    }
    let rows = pretrained.network.forward_batch(&mut batch)?.to_vec2::<f32>()?;
    drop(batch);
    let mut fed = fed.into_iter().zip(rows).peekable();
    let mut completed: Vec<(&mut Job, Vec<f32>)> = Vec::with_capacity(active.len());
    for (i, job) in active.into_iter().enumerate() {
        if let Some((_, row)) = fed.next_if(|(fed_index, _)| *fed_index == i) {
            if job.generation.wants_logits() {
                completed.push((job, row)); // else a prompt chunk with more to come
            }
        }
    }
    // Prompts read in full this turn: keep their prefix for later prompts that start the same way.
    if !prefixes.is_off() {
        // Only prompts that reused nothing: one that started from a stored prefix would store that
        // prefix a second time (16 few-shot questions would keep 16 copies of the examples).
        for (job, _) in completed.iter().filter(|(job, _)| job.generation.cached_prompt_tokens() == 0) {
            if let Some((prompt, cache)) = job.generation.prompt_kv() {
                // A copy that fails (memory) only loses the reuse.
                let _ = prefixes.insert(prompt, cache);
            }
        }
    }
    let choose = |(job, row): (&mut Job, Vec<f32>)| match job.generation.accept_logits(&row) {
        Ok(step) => job.shared.deliver_step(step),
        Err(err) => job.fail(err),
    };
    // Choosing a token reads a vocabulary-sized row per sequence: with several sequences, spread
    // them over the compute pool; a lone one is quicker here than handed over to the pool.
    match completed.len() {
        0 | 1 => completed.into_iter().for_each(choose),
        _ => completed.into_par_iter().for_each(choose),
    }
    Ok(())
}
