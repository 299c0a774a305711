//! Work that blocks runs off the JS thread and settles a promise, its result converted to JS on
//! the JS thread: a forward pass (logits, top-k, a session's append, a tokenizer's load) on the
//! addon's task threads, work that may take seconds (a model's load, a beam search) on a thread of
//! its own. One generic path, so that the exposed classes need no task type each (and no module
//! imports another's to build its result).
//!
//! Not on libuv's thread pool, which ran these as napi `Task`s before: Node waits for the pool's
//! tasks before `process.exit()` or `worker.terminate()` completes (races.spec.ts); its four
//! threads also do Node's own file, DNS and zlib work; and what mimalloc held free on them was
//! never given back, since nothing of ours runs there when they go idle (50 load + dispose cycles
//! ended 15–100 MiB above the first: docs/reliability.md). Task threads give theirs back once
//! idle (`run_jobs`).

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use napi::bindgen_prelude::{Object, ToNapiValue};
use napi::Env;

use crate::allocator::return_own_free_memory;
use crate::errors::{coded, guarded};

/// Threads that run blocking calls: as many as libuv's default pool that ran them before, so as
/// many forward passes can be in flight at once as then (more would only queue inside the
/// compute pool, which each pass spreads its work over).
const TASK_THREADS: usize = 4;

/// How long a task thread waits for more work before it gives back its free memory: long enough
/// that calls made one after another never pay for it (as mimalloc's own purge delay).
const IDLE_BEFORE_RETURNING_MEMORY: Duration = Duration::from_millis(100);

type Job = Box<dyn FnOnce() + Send>;
type Resolve<J> = Box<dyn FnOnce(Env) -> napi::Result<J> + Send>;

/// `work` on one of the task threads; its result settles the returned promise (converted by
/// `to_js` on the JS thread). For work that ends within a forward pass or so.
pub fn on_task_thread<'env, T, J>(
    env: &'env Env,
    work: impl FnOnce() -> nexttoken::Result<T> + Send + 'static,
    to_js: fn(T) -> J,
) -> napi::Result<Object<'env>>
where
    T: Send + 'static,
    J: ToNapiValue + 'static,
{
    settled_by(env, work, to_js, |job| {
        task_threads()?.send(job).map_err(|_| "the task threads have stopped".to_string())
    })
}

/// `work` on a new thread named `name`, whose result settles the returned promise (converted by
/// `to_js` on the JS thread). For work that may run for seconds, which would keep a task thread
/// from the calls queued behind it; if the process exits first, the thread is left behind and
/// its result dropped.
pub fn on_own_thread<'env, T, J>(
    env: &'env Env,
    name: &str,
    work: impl FnOnce() -> nexttoken::Result<T> + Send + 'static,
    to_js: fn(T) -> J,
) -> napi::Result<Object<'env>>
where
    T: Send + 'static,
    J: ToNapiValue + 'static,
{
    settled_by(env, work, to_js, |job| {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(job)
            .map(drop)
            .map_err(|err| format!("cannot start a thread: {err}"))
    })
}

/// A promise, and a job for `start` that settles it with `work`'s result. If `start` cannot run
/// the job, the promise is rejected at once: an unsettled one would keep the event loop alive
/// forever.
fn settled_by<'env, T, J>(
    env: &'env Env,
    work: impl FnOnce() -> nexttoken::Result<T> + Send + 'static,
    to_js: fn(T) -> J,
    start: impl FnOnce(Job) -> Result<(), String>,
) -> napi::Result<Object<'env>>
where
    T: Send + 'static,
    J: ToNapiValue + 'static,
{
    let (deferred, promise) = env.create_deferred::<J, Resolve<J>>()?;
    // Shared between the job and this function, whichever settles it first.
    let pending = Arc::new(Mutex::new(Some(deferred)));
    let settle = pending.clone();
    let job: Job = Box::new(move || {
        let result = guarded(work);
        if let Some(deferred) = settle.lock().unwrap_or_else(PoisonError::into_inner).take() {
            match result {
                Ok(output) => deferred.resolve(Box::new(move |_| Ok(to_js(output)))),
                Err(err) => deferred.reject(err),
            }
        }
    });
    if let Err(reason) = start(job) {
        if let Some(deferred) = pending.lock().unwrap_or_else(PoisonError::into_inner).take() {
            deferred.reject(coded("ERR_INTERNAL", &reason));
        }
    }
    Ok(promise)
}

/// The queue the task threads take jobs from, started with the first job (one set per process,
/// shared by every worker thread that loads the addon).
fn task_threads() -> Result<&'static Sender<Job>, String> {
    static QUEUE: OnceLock<Result<Sender<Job>, String>> = OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let started = (0..TASK_THREADS)
            .filter(|i| {
                let receiver = receiver.clone();
                let thread = std::thread::Builder::new().name(format!("nexttoken-task-{i}"));
                thread.spawn(move || run_jobs(&receiver)).is_ok()
            })
            .count();
        match started {
            0 => Err("cannot start the task threads".to_string()),
            _ => Ok(sender),
        }
    });
    queue.as_ref().map_err(Clone::clone)
}

/// A task thread's life: the next job, whichever thread is free takes it. A thread that has run
/// a job and then waited `IDLE_BEFORE_RETURNING_MEMORY` for the next gives back the memory its
/// heap holds free (the allocator would keep it until the thread's next job, however far off);
/// not after every job, which would cost each call a few tens of microseconds. Only the thread
/// holding the queue waits with that timeout; one that finished a job while another waits on the
/// queue gives its memory back on its next turn. (A condition-variable queue, where every idle
/// thread times out, measured worse: 50 load + dispose cycles ended at 85 MiB instead of 71-73,
/// as jobs spread over all four threads' heaps.)
fn run_jobs(receiver: &Mutex<Receiver<Job>>) {
    let mut holds_free_memory = false;
    loop {
        // Locked only while waiting for a job, so each job goes to exactly one thread.
        let queue = receiver.lock().unwrap_or_else(PoisonError::into_inner);
        let next = match holds_free_memory {
            true => queue.recv_timeout(IDLE_BEFORE_RETURNING_MEMORY),
            false => queue.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        drop(queue);
        match next {
            Ok(job) => {
                job();
                holds_free_memory = true;
            }
            Err(RecvTimeoutError::Timeout) => {
                return_own_free_memory();
                holds_free_memory = false;
            }
            Err(RecvTimeoutError::Disconnected) => return, // every sender is gone: nothing more can come
        }
    }
}
