//! A submitted generation as its caller sees it, and the mailbox the scheduler fills.
//!
//! Tokens are pulled: `Request::next` asks for tokens and registers a callback that runs once
//! at least one token (or the end) is there: at once if they already are, else on the thread
//! that delivers them. Nobody blocks while waiting, so a caller can wait for any number of
//! generations without holding a thread for each (Node's libuv pool has four).

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};

use super::Message;
use crate::error::{Error, Result};
use crate::generation::{Output, Step};

/// What one `Request::next` receives.
#[derive(Debug)]
pub struct Delivery {
    /// The tokens generated since the last delivery, oldest first: at least one unless `done`,
    /// at most the number asked for.
    pub steps: Vec<Step>,
    /// The generation has ended and every token has been delivered: `Request::outcome` says how
    /// it ended.
    pub done: bool,
}

/// Called once with the next delivery, on whichever thread makes it available.
pub type OnDelivery = Box<dyn FnOnce(Delivery) + Send>;

struct Waiter {
    max_steps: usize,
    on_delivery: OnDelivery,
}

#[derive(Default)]
struct Mailbox {
    steps: VecDeque<Step>,
    /// The final output, or the error that ended the generation.
    outcome: Option<Result<Output>>,
    waiter: Option<Waiter>,
}

impl Mailbox {
    /// The waiting caller and what to hand it, when there is something to hand it.
    fn ready_waiter(&mut self) -> Option<(OnDelivery, Delivery)> {
        if self.steps.is_empty() && self.outcome.is_none() {
            return None;
        }
        let waiter = self.waiter.take()?;
        Some((waiter.on_delivery, self.take(waiter.max_steps)))
    }

    fn take(&mut self, max_steps: usize) -> Delivery {
        let n = self.steps.len().min(max_steps);
        let steps: Vec<Step> = self.steps.drain(..n).collect();
        let done = self.steps.is_empty() && self.outcome.is_some();
        Delivery { steps, done }
    }
}

impl Drop for Mailbox {
    /// A waiting caller always hears back, even from a generation that vanished without an end.
    fn drop(&mut self) {
        if let Some(waiter) = self.waiter.take() {
            self.outcome.get_or_insert_with(|| Err(stopped()));
            hand_over(waiter.on_delivery, self.take(waiter.max_steps));
        }
    }
}

/// Calls a caller's callback. A panic in it is the caller's bug and cannot be reported to
/// anyone; it must not unwind into the scheduler (or abort the process from a destructor).
fn hand_over(on_delivery: OnDelivery, delivery: Delivery) {
    let _ = catch_unwind(AssertUnwindSafe(move || on_delivery(delivery)));
}

fn stopped() -> Error {
    Error::Internal("the scheduler stopped before the generation finished".into())
}

/// The state a request shares with the scheduler.
#[derive(Default)]
pub(super) struct Shared {
    cancelled: AtomicBool,
    /// Tokens asked for and not generated yet.
    wanted: AtomicUsize,
    mailbox: Mutex<Mailbox>,
}

impl Shared {
    pub(super) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    pub(super) fn is_wanted(&self) -> bool {
        self.wanted.load(Ordering::Acquire) > 0
    }

    fn mailbox(&self) -> MutexGuard<'_, Mailbox> {
        // A panic while the lock was held cannot leave the queue half-written (every change is
        // one push or drain), so a poisoned lock is still usable.
        self.mailbox.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a generated token for the caller, which asked for it.
    pub(super) fn deliver_step(&self, step: Step) {
        self.wanted.fetch_sub(1, Ordering::AcqRel);
        let ready = {
            let mut mailbox = self.mailbox();
            mailbox.steps.push_back(step);
            mailbox.ready_waiter()
        };
        // Outside the lock: the callback may call `next` again.
        if let Some((on_delivery, delivery)) = ready {
            hand_over(on_delivery, delivery);
        }
    }

    /// Records how the generation ended (the first outcome wins).
    pub(super) fn deliver_outcome(&self, outcome: Result<Output>) {
        let ready = {
            let mut mailbox = self.mailbox();
            if mailbox.outcome.is_some() {
                return;
            }
            mailbox.outcome = Some(outcome);
            mailbox.ready_waiter()
        };
        if let Some((on_delivery, delivery)) = ready {
            hand_over(on_delivery, delivery);
        }
    }
}

/// The caller's side of a submitted generation. Dropping it cancels the generation.
pub struct Request {
    pub(super) shared: Arc<Shared>,
    pub(super) scheduler: Sender<Message>,
}

impl Request {
    /// A request that never ran: its outcome is `err`.
    pub(super) fn ended(err: Error, scheduler: Sender<Message>) -> Self {
        let shared = Shared::default();
        shared.deliver_outcome(Err(err));
        Request { shared: Arc::new(shared), scheduler }
    }

    /// Asks for up to `max_steps` more tokens and calls `on_delivery` once at least one of them
    /// (or the end) is there, with every token generated since the last delivery up to
    /// `max_steps`. Only one call may wait at a time: a second one fails at once.
    pub fn next(&self, max_steps: usize, on_delivery: OnDelivery) -> Result<()> {
        let max_steps = max_steps.max(1);
        let ready = {
            let mut mailbox = self.shared.mailbox();
            if mailbox.waiter.is_some() {
                return Err(Error::InvalidArg("next() was called while another next() was waiting".into()));
            }
            mailbox.waiter = Some(Waiter { max_steps, on_delivery });
            mailbox.ready_waiter()
        };
        // Demand adds up: tokens generated ahead and handed out now are replaced, so a caller
        // that asked for some ahead (`want`) stays that far ahead.
        self.want(max_steps);
        if let Some((on_delivery, delivery)) = ready {
            hand_over(on_delivery, delivery);
        }
        Ok(())
    }

    /// Asks for up to `tokens` more tokens without waiting for them (to keep some generated
    /// ahead of the caller).
    pub fn want(&self, tokens: usize) {
        if tokens > 0 {
            self.shared.wanted.fetch_add(tokens, Ordering::AcqRel);
            let _ = self.scheduler.send(Message::Wake);
        }
    }

    /// Ends the generation before its next token (it finishes with `StopReason::Abort`).
    pub fn cancel(&self) {
        self.shared.cancelled.store(true, Ordering::Release);
        let _ = self.scheduler.send(Message::Wake);
    }

    /// Asks for every token and blocks until the generation ends: its output. For Rust callers
    /// that may block a thread (tools, tests).
    pub fn wait(&self) -> Result<Output> {
        loop {
            let (sender, delivered) = std::sync::mpsc::channel();
            self.next(usize::MAX, Box::new(move |delivery| drop(sender.send(delivery))))?;
            let delivery = delivered.recv().map_err(|_| Error::Internal("the generation vanished".into()))?;
            if delivery.done {
                break;
            }
        }
        self.outcome()
            .unwrap_or_else(|| Err(Error::Internal("the generation ended without an outcome".into())))
    }

    /// How the generation ended: None while it runs or while tokens are still to be delivered.
    pub fn outcome(&self) -> Option<Result<Output>> {
        let mailbox = self.shared.mailbox();
        match mailbox.steps.is_empty() {
            true => mailbox.outcome.clone(),
            false => None,
        }
    }
}

impl Drop for Request {
    /// Nobody can read the generation any more: stop it and free its slot and cache.
    fn drop(&mut self) {
        self.cancel();
    }
}
