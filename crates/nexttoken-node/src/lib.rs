//! Node.js binding of nexttoken. Each exposed class has its own file; work that touches the
//! model runs as a napi `Task` on libuv's thread pool (tasks.rs), never on the JS thread.

/// mimalloc for the addon's own allocations (Node's are untouched): a forward pass allocates and
/// frees megabytes of activations per layer, which glibc hands back to the kernel and then faults
/// in again page by page (about a tenth of a prompt's time); mimalloc reuses them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod errors;
mod generation;
mod model;
mod tasks;
mod tokenizer;
