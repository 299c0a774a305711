//! Continuous batching: one thread per model decodes every running generation together.
//!
//! Each turn gathers up to `max_batch_size` running sequences and runs one ragged forward pass
//! for all of them (one new token each, or a chunk of a newly admitted prompt), so the weights
//! are read once for the whole batch. A finished sequence leaves at once and a waiting one takes
//! its slot; long prompts enter in chunks so that the others keep decoding meanwhile.
//!
//! Generation is pulled, not pushed: a caller asks for tokens (`Request::want`) and a sequence
//! takes part in a turn only while it has tokens asked for. So a slow consumer costs no memory,
//! and an abort stops a sequence before any token its caller has not asked for.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

use rayon::prelude::*;

use crate::error::{panic_message, Error, Result};
use crate::generation::{Generation, Output, Step};
use crate::model::KvCache;
use crate::pretrained::Pretrained;

/// Prompt tokens one sequence may feed per forward pass while others are decoding.
const PREFILL_CHUNK: usize = 128;

/// What a request hears back: each token, then the final output (or the error that ended it).
pub enum Event {
    Step(Step),
    Done(Result<Output>),
}

#[allow(clippy::large_enum_variant)] // one `Submit` per request: not worth a box
enum Message {
    Submit(Job),
    /// A caller asked for tokens or cancelled: look at the running sequences again.
    Wake,
}

/// The state a request shares with the scheduler.
struct Control {
    cancelled: AtomicBool,
    /// Tokens asked for and not generated yet.
    wanted: AtomicUsize,
}

/// The caller's side of a submitted generation.
pub struct Request {
    pub events: Receiver<Event>,
    pub handle: RequestHandle,
}

/// Asks for tokens or cancels; separate from the events so that it can be used while another
/// thread waits on them.
#[derive(Clone)]
pub struct RequestHandle {
    control: Arc<Control>,
    scheduler: Sender<Message>,
}

impl RequestHandle {
    /// Asks for up to `tokens` more tokens.
    pub fn want(&self, tokens: usize) {
        self.control.wanted.fetch_add(tokens, Ordering::AcqRel);
        let _ = self.scheduler.send(Message::Wake);
    }

    /// Ends the generation before its next token (it finishes with `StopReason::Abort`).
    pub fn cancel(&self) {
        self.control.cancelled.store(true, Ordering::Release);
        let _ = self.scheduler.send(Message::Wake);
    }
}

struct Job {
    generation: Generation,
    events: Sender<Event>,
    control: Arc<Control>,
    /// Set once an error has been sent as this job's `Done`.
    failed: bool,
}

impl Job {
    /// Sends the final output once finished (or cancelled) and says whether the job is over.
    fn finish_if_done(&mut self) -> bool {
        if self.failed {
            return true;
        }
        if self.control.cancelled.load(Ordering::Acquire) {
            self.generation.abort();
        }
        if !self.generation.is_finished() {
            return false;
        }
        let _ = self.events.send(Event::Done(self.generation.output()));
        true
    }

    fn is_wanted(&self) -> bool {
        self.control.wanted.load(Ordering::Acquire) > 0
    }

    fn fail(&mut self, err: Error) {
        self.generation.abort();
        self.failed = true;
        let _ = self.events.send(Event::Done(Err(err)));
    }

    fn send_step(&mut self, step: Step) {
        self.control.wanted.fetch_sub(1, Ordering::AcqRel);
        if self.events.send(Event::Step(step)).is_err() {
            self.control.cancelled.store(true, Ordering::Release); // nobody listens any more
        }
    }
}

pub struct Scheduler {
    messages: Sender<Message>,
}

impl Scheduler {
    pub fn new(model: Arc<Pretrained>, max_batch_size: usize) -> Result<Self> {
        if max_batch_size == 0 {
            return Err(Error::InvalidArg("maxBatchSize must be at least 1".into()));
        }
        let (messages, incoming) = channel();
        std::thread::Builder::new()
            .name("nexttoken-scheduler".into())
            .spawn(move || run(&model, incoming, max_batch_size))
            .map_err(|err| Error::Internal(format!("cannot start the scheduler thread: {err}")))?;
        Ok(Scheduler { messages })
    }

    /// Queues `generation`; it runs as its caller asks for tokens (`RequestHandle::want`).
    pub fn submit(&self, generation: Generation) -> Request {
        let (events, receiver) = channel();
        let control = Arc::new(Control { cancelled: AtomicBool::new(false), wanted: AtomicUsize::new(0) });
        let job = Job { generation, events, control: control.clone(), failed: false };
        if let Err(err) = self.messages.send(Message::Submit(job)) {
            let Message::Submit(job) = err.0 else { unreachable!() };
            let _ = job.events.send(Event::Done(Err(Error::Internal("the scheduler has stopped".into()))));
        }
        Request { events: receiver, handle: RequestHandle { control, scheduler: self.messages.clone() } }
    }
}

// Dropping the Scheduler drops its sender; the thread ends once every request handle is gone
// too and nothing is left to run.

fn run(model: &Pretrained, incoming: Receiver<Message>, max_batch_size: usize) {
    let mut running: Vec<Job> = Vec::new();
    let mut waiting: VecDeque<Job> = VecDeque::new();
    loop {
        // Sleep until there is work: a sequence with tokens asked for, or a message.
        let idle = running.iter().all(|job| !job.is_wanted()) && waiting.iter().all(|job| !job.is_wanted());
        if idle {
            match incoming.recv() {
                Ok(message) => receive(message, &mut waiting),
                Err(_) => return, // every sender is gone: no model, no requests
            }
        }
        for message in incoming.try_iter() {
            receive(message, &mut waiting);
        }
        while running.len() < max_batch_size {
            match waiting.pop_front() {
                Some(job) => running.push(job),
                None => break,
            }
        }
        waiting.retain_mut(|job| !(job.control.cancelled.load(Ordering::Acquire) && job.finish_if_done()));
        running.retain_mut(|job| !job.finish_if_done());
        if !running.iter().any(Job::is_wanted) {
            continue;
        }
        let turn = catch_unwind(AssertUnwindSafe(|| decode_turn(model, &mut running)));
        if let Err(message) =
            turn.map_err(|payload| panic_message(payload.as_ref())).and_then(|r| r.map_err(|e| e.to_string()))
        {
            for job in running.iter_mut() {
                job.fail(Error::Internal(message.clone()));
            }
        }
        running.retain_mut(|job| !job.finish_if_done());
    }
}

fn receive(message: Message, waiting: &mut VecDeque<Job>) {
    if let Message::Submit(job) = message {
        waiting.push_back(job);
    }
}

/// One forward pass for every running sequence that has tokens asked for, then a token for each
/// that completed its input.
fn decode_turn(model: &Pretrained, running: &mut [Job]) -> Result<()> {
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
    let rows = model.gpt2.forward_batch(&mut batch)?.to_vec2::<f32>()?;
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
    let choose = |(job, row): (&mut Job, Vec<f32>)| match job.generation.accept_logits(&row) {
        Ok(step) => job.send_step(step),
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
