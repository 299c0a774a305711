//! Node.js binding of nexttoken. Each exposed class has its own file. A single forward pass
//! (loading, logits, top-k) runs as a napi `Task` on libuv's thread pool (tasks.rs); generations
//! run in the model's scheduler and settle their promises from there (generation.rs). Nothing
//! runs on the JS thread.

/// mimalloc for the addon's own allocations (Node's are untouched): a forward pass allocates and
/// frees megabytes of activations per layer, which glibc hands back to the kernel and then faults
/// in again page by page (about a tenth of a prompt's time); mimalloc reuses them. Its v2 line:
/// v3 (the crate's default) crashes in its thread initialisation when a second worker thread
/// loads the addon after the first has exited.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod errors;
mod generation;
mod model;
mod tasks;
mod tokenizer;
