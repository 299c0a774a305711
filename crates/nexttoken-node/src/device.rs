//! What the loader asks before it loads the CUDA addon (lib/devices.ts).

use napi_derive::napi;

/// The CUDA build's libraries that this machine's dynamic loader cannot open, each as "name (what
/// installs it)"; empty when all are there.
#[napi]
pub fn missing_cuda_libraries() -> Vec<String> {
    nexttoken::device::missing_cuda_libraries()
}
