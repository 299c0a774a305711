//! The scheduler as Node drives it: tokens pulled with `Request::next` and delivered through
//! callbacks, more requests than batch slots, cancellation by dropping a request, the idle
//! timeout, the queue limit and dropping the scheduler. Every wait here has a deadline, so a regression fails instead of hanging.

use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::Duration;

use nexttoken::{CallOptions, Delivery, Error, Generation, Pretrained, Request, Scheduler, SchedulerOptions};

const DEADLINE: Duration = Duration::from_secs(30);

fn tiny_model() -> Arc<Pretrained> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures/tiny-gpt2");
    Arc::new(Pretrained::load(dir.to_str().unwrap(), "cpu").unwrap())
}

/// A scheduler with `max_batch_size` slots and the default idle timeout.
fn batch_of(model: &Arc<Pretrained>, max_batch_size: usize) -> Scheduler {
    Scheduler::new(model.clone(), SchedulerOptions { max_batch_size, ..SchedulerOptions::default() }).unwrap()
}

fn options(max_new_tokens: usize) -> CallOptions {
    CallOptions { max_new_tokens: Some(max_new_tokens), ..CallOptions::default() }
}

fn submit(scheduler: &Scheduler, model: &Arc<Pretrained>, text: &str, max_new_tokens: usize) -> Request {
    let prompt = model.tokenizer.encode(text).unwrap();
    scheduler.submit(Generation::new(model.clone(), prompt, options(max_new_tokens)).unwrap()).unwrap()
}

/// Asks for up to `max_steps` tokens; the delivery arrives on the returned channel.
fn pull(request: &Request, max_steps: usize) -> Receiver<Delivery> {
    let (sender, receiver) = channel();
    // The receiver may be gone by the time a delivery comes: that is fine here.
    request.next(max_steps, Box::new(move |delivery| drop(sender.send(delivery)))).unwrap();
    receiver
}

/// Pulls until the end; returns the new ids.
fn drain(request: &Request) -> Vec<u32> {
    let mut ids = Vec::new();
    loop {
        let delivery =
            pull(request, usize::MAX).recv_timeout(DEADLINE).expect("no delivery before the deadline");
        ids.extend(delivery.steps.iter().map(|step| step.id));
        if delivery.done {
            return ids;
        }
    }
}

/// The new ids of `text` generated on a scheduler of its own, as a batch of one.
fn alone(model: &Arc<Pretrained>, text: &str, max_new_tokens: usize) -> Vec<u32> {
    let prompt = model.tokenizer.encode(text).unwrap();
    let generation = Generation::new(model.clone(), prompt, options(max_new_tokens)).unwrap();
    batch_of(model, 1).generate(generation).unwrap().new_ids
}

#[test]
fn more_requests_than_slots_all_finish_with_the_tokens_of_each_alone() {
    let model = tiny_model();
    let scheduler = batch_of(&model, 4);
    let prompts: Vec<String> = (0..24).map(|i| format!("Request number {i} says")).collect();
    // Every request waits at once (one pending delivery each) before any is read: with a thread
    // per waiting request this many would exhaust a small pool.
    let requests: Vec<Request> = prompts.iter().map(|p| submit(&scheduler, &model, p, 12)).collect();
    let first: Vec<Receiver<Delivery>> = requests.iter().map(|r| pull(r, 1)).collect();
    for ((request, first), prompt) in requests.iter().zip(first).zip(&prompts) {
        let mut ids: Vec<u32> = first.recv_timeout(DEADLINE).unwrap().steps.iter().map(|s| s.id).collect();
        ids.extend(drain(request));
        assert_eq!(ids, alone(&model, prompt, 12), "{prompt}");
        let output = request.outcome().expect("finished").unwrap();
        assert_eq!(output.new_ids, ids);
    }
}

#[test]
fn a_dropped_request_frees_its_slot() {
    let model = tiny_model();
    let scheduler = batch_of(&model, 1);
    let abandoned = submit(&scheduler, &model, "Abandoned", 500);
    assert_eq!(pull(&abandoned, 1).recv_timeout(DEADLINE).unwrap().steps.len(), 1);
    drop(abandoned);
    let next = submit(&scheduler, &model, "Next", 8);
    assert_eq!(drain(&next), alone(&model, "Next", 8));
}

#[test]
fn a_request_nobody_pulls_from_ends_after_the_idle_timeout_and_frees_its_slot() {
    let model = tiny_model();
    let idle_timeout = Duration::from_millis(200);
    let options = SchedulerOptions {
        max_batch_size: 1,
        idle_timeout: Some(idle_timeout),
        ..SchedulerOptions::default()
    };
    let scheduler = Scheduler::new(model.clone(), options).unwrap();
    let idle = submit(&scheduler, &model, "Idle", 500);
    idle.want(1); // one token ahead, as a stream asks
    assert_eq!(pull(&idle, 1).recv_timeout(DEADLINE).unwrap().steps.len(), 1);
    // Waits for the only slot, which the idle request gives back after its timeout.
    let waiting = submit(&scheduler, &model, "Waiting", 8);
    assert_eq!(drain(&waiting), alone(&model, "Waiting", 8));
    // The idle request hands out the token generated ahead, then reports why it ended.
    let last = pull(&idle, 1).recv_timeout(DEADLINE).unwrap();
    assert_eq!((last.steps.len(), last.done), (1, true));
    match idle.outcome() {
        Some(Err(err @ Error::Idle(_))) => assert_eq!(err.code(), "ERR_STREAM_IDLE"),
        other => panic!("expected the idle error, got {other:?}"),
    }
}

#[test]
fn no_idle_timeout_keeps_an_unread_request_running() {
    let model = tiny_model();
    let options = SchedulerOptions { max_batch_size: 2, idle_timeout: None, ..SchedulerOptions::default() };
    let scheduler = Scheduler::new(model.clone(), options).unwrap();
    let slow = submit(&scheduler, &model, "Slow reader", 8);
    let first = pull(&slow, 1).recv_timeout(DEADLINE).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut ids: Vec<u32> = first.steps.iter().map(|s| s.id).collect();
    ids.extend(drain(&slow));
    assert_eq!(ids, alone(&model, "Slow reader", 8));
}

#[test]
fn cancel_ends_with_abort() {
    let model = tiny_model();
    let scheduler = batch_of(&model, 1);
    let cancelled = submit(&scheduler, &model, "Cancelled", 500);
    pull(&cancelled, 1).recv_timeout(DEADLINE).unwrap();
    cancelled.cancel();
    assert!(pull(&cancelled, 1).recv_timeout(DEADLINE).unwrap().done);
    let stop = cancelled.outcome().unwrap().unwrap().stop_reason.unwrap();
    assert_eq!(stop.as_str(), "abort");
}

#[test]
fn dropping_the_scheduler_lets_submitted_generations_finish() {
    let model = tiny_model();
    let scheduler = batch_of(&model, 1);
    let running = submit(&scheduler, &model, "Running", 8);
    let queued = submit(&scheduler, &model, "Queued", 8);
    let first = pull(&queued, usize::MAX);
    drop(scheduler); // as `dispose()` does: calls already made run to their end
    assert_eq!(drain(&running), alone(&model, "Running", 8));
    let first = first.recv_timeout(DEADLINE).unwrap();
    let mut ids: Vec<u32> = first.steps.iter().map(|s| s.id).collect();
    if !first.done {
        ids.extend(drain(&queued));
    }
    assert_eq!(ids, alone(&model, "Queued", 8));
}

#[test]
fn an_idle_timeout_of_zero_is_refused() {
    let options = SchedulerOptions { idle_timeout: Some(Duration::ZERO), ..SchedulerOptions::default() };
    let err = Scheduler::new(tiny_model(), options).err().expect("refused");
    assert_eq!(err.code(), "ERR_INVALID_ARG");
}

#[test]
fn one_pull_at_a_time() {
    let model = tiny_model();
    let scheduler = batch_of(&model, 1);
    let busy = submit(&scheduler, &model, "Busy", 100_000);
    let blocker = submit(&scheduler, &model, "Blocked", 8);
    let _first = pull(&busy, 1);
    // `blocker` waits behind `busy`: its first pull is pending, a second one is refused.
    let _pending = pull(&blocker, 1);
    let err = blocker.next(1, Box::new(|_| {})).unwrap_err();
    assert_eq!(err.code(), "ERR_INVALID_ARG");
}

#[test]
fn batch_size_limits_are_checked() {
    let model = tiny_model();
    for max_batch_size in [0, 1025] {
        let options = SchedulerOptions { max_batch_size, ..SchedulerOptions::default() };
        let err = Scheduler::new(model.clone(), options).err().expect("refused");
        assert_eq!(err.code(), "ERR_INVALID_ARG");
    }
}

#[test]
fn beyond_the_batch_and_the_queue_submit_is_refused_until_a_generation_ends() {
    let model = tiny_model();
    let options =
        SchedulerOptions { max_batch_size: 2, max_queue_length: Some(1), ..SchedulerOptions::default() };
    let scheduler = Scheduler::new(model.clone(), options).unwrap();
    let held: Vec<Request> =
        (0..3).map(|i| submit(&scheduler, &model, &format!("Held {i}"), 100_000)).collect();
    let generation = || Generation::new(model.clone(), vec![1, 2, 3], self::options(4)).unwrap();
    let err = scheduler.submit(generation()).err().expect("two running and one waiting: full");
    assert_eq!(err.code(), "ERR_OVERLOADED");
    drop(held); // cancelled: their places come back once the scheduler has dropped them
    let deadline = std::time::Instant::now() + DEADLINE;
    let request = loop {
        match scheduler.submit(generation()) {
            Ok(request) => break request,
            Err(_) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Err(err) => panic!("still refused after the held generations ended: {err}"),
        }
    };
    assert_eq!(drain(&request).len(), 4);
}

#[test]
fn a_shared_prompt_prefix_is_computed_once_and_the_results_do_not_change() {
    let model = tiny_model();
    let prefix: Vec<u32> = (0..100).map(|i| 1000 + i * 7).collect();
    let prompts: Vec<Vec<u32>> = (0..3).map(|i| [&prefix[..], &[11 + i, 262]].concat()).collect();
    let run = |options: SchedulerOptions| {
        let scheduler = Scheduler::new(model.clone(), options).unwrap();
        let requests: Vec<Request> = prompts
            .iter()
            .map(|p| {
                let call = CallOptions { max_new_tokens: Some(6), ..Default::default() };
                scheduler.submit(Generation::new(model.clone(), p.clone(), call).unwrap()).unwrap()
            })
            .collect();
        // All asked for at once: they arrive together, so the later ones must wait for the prefix.
        requests.iter().for_each(|r| r.want(usize::MAX));
        requests
            .iter()
            .map(|r| {
                drain(r);
                r.outcome().unwrap().unwrap()
            })
            .collect::<Vec<_>>()
    };
    let shared = run(SchedulerOptions::default());
    let alone = run(SchedulerOptions { prefix_cache_bytes: 0, ..Default::default() });
    for (a, b) in shared.iter().zip(&alone) {
        assert_eq!(a.ids, b.ids);
        assert_eq!(b.timings.cached_prompt_tokens, 0);
    }
    let cached: Vec<usize> = shared.iter().map(|o| o.timings.cached_prompt_tokens).collect();
    assert_eq!(cached, vec![0, 100, 100], "the first reads the prefix; the others wait for it and copy it");
}
