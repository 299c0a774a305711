//! Node.js binding of nexttoken: types converted, nothing decided. Each exposed class has its own
//! file (gpt2.rs, generation.rs, session.rs, tokenizer.rs); the plain objects JS passes in and gets back are
//! in options.rs and outputs.rs. Loading and single forward passes (logits, top-k) run as a napi
//! `Task` on libuv's thread pool (task.rs); generations run in the model's scheduler and settle
//! their promises from there (generation.rs). Nothing runs on the JS thread.

/// mimalloc for the addon's own allocations (Node's are untouched): a forward pass allocates and
/// frees megabytes of activations per layer, which glibc hands back to the kernel and then faults
/// in again page by page (about a tenth of a prompt's time); mimalloc reuses them. Its v2 line:
/// v3 (the crate's default) crashes in its thread initialisation when a second worker thread
/// loads the addon after the first has exited.
/// (Left out of sanitizer builds, which need the system allocator: see the crate's features.)
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod errors;
mod generation;
mod gpt2;
mod options;
mod outputs;
mod session;
mod task;
mod tokenizer;
