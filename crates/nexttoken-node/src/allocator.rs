//! The addon's allocator (Node's own allocations are untouched), and giving back what it holds
//! free when a model or a session is released.

/// mimalloc: a forward pass allocates and frees megabytes of activations per layer, which glibc
/// hands back to the kernel and then faults in again page by page (about a tenth of a prompt's
/// time); mimalloc reuses them. Its v2 line: v3 (the crate's default) crashes in its thread
/// initialisation when a second worker thread loads the addon after the first has exited.
/// (Left out of sanitizer builds, which need the system allocator: see the crate's features.)
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Returns the memory the allocator holds free to the system: this thread's, that of threads
/// that have ended (a load's), and, without waiting for them, each compute pool thread's, where
/// a model's activations, KV caches and load buffers were allocated. mimalloc keeps freed pages
/// with the thread that allocated them and returns them only when that thread allocates again
/// some time later; a pool that goes quiet after a model is disposed never does, and 50 load +
/// dispose cycles ended hundreds of MiB above the first (docs/reliability.md). Not after every
/// call: a pass's pages, returned, are faulted in again by the next one.
pub fn return_free_memory() {
    #[cfg(feature = "mimalloc")]
    rayon::spawn_broadcast(|_| return_own_free_memory());
    return_own_free_memory();
}

/// Returns what this thread's heap holds free, and the free memory of threads that have ended.
pub fn return_own_free_memory() {
    #[cfg(feature = "mimalloc")]
    // SAFETY: mi_collect only frees the allocator's own free pages (this thread's heap, the
    // segments of ended threads, delayed purges); it takes no pointer and may run on any thread
    // at any time.
    unsafe {
        libmimalloc_sys::mi_collect(true)
    }
}
