//! Choosing where the model runs. CPU is always there; CUDA and Metal only in builds made with
//! the `cuda` / `metal` features, and only where their driver and libraries are.

use candle_core::Device;

use crate::error::{Error, Result};

/// Where a model runs when the caller does not say.
pub const DEFAULT_DEVICE: &str = "cpu";

/// The shared libraries a CUDA build needs that a system does not ship (its ELF NEEDED entries
/// besides glibc's, and cuBLASLt, which cuBLAS loads), each with what installs it. The build links
/// CUDA 13: the driver must be 580 or newer.
pub const CUDA_LIBRARIES: [(&str, &str); 5] = [
    ("libcuda.so.1", "the NVIDIA driver, 580 or newer"),
    ("libcudart.so.13", "the CUDA 13 runtime: pip install nvidia-cuda-runtime"),
    ("libcublas.so.13", "cuBLAS 13: pip install nvidia-cublas"),
    ("libcublasLt.so.13", "cuBLAS 13: pip install nvidia-cublas"),
    ("libcurand.so.10", "cuRAND for CUDA 13: pip install nvidia-curand"),
];

pub fn device_from_name(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda(),
        "metal" => metal(),
        other => Err(Error::InvalidArg(format!("unknown device '{other}': use 'cpu', 'cuda' or 'metal'"))),
    }
}

/// The libraries of [`CUDA_LIBRARIES`] that the dynamic loader cannot open, each as "name (what
/// installs it)". Probed before a CUDA build is loaded: loading it with one missing fails naming
/// only the first.
pub fn missing_cuda_libraries() -> Vec<String> {
    CUDA_LIBRARIES
        .iter()
        .filter(|(name, _)| !can_open(name))
        .map(|(name, from)| format!("{name} ({from})"))
        .collect()
}

/// Whether the dynamic loader finds `library` where loading an addon would look for it
/// (LD_LIBRARY_PATH, the ld.so cache, the system directories).
#[cfg(unix)]
fn can_open(library: &str) -> bool {
    let name = std::ffi::CString::new(library).expect("a library name has no NUL");
    // SAFETY: `name` is NUL-terminated and outlives the call; RTLD_LOCAL keeps the library's
    // symbols out of the process's global namespace.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return false;
    }
    // SAFETY: `handle` came from the dlopen above and is closed once.
    unsafe { libc::dlclose(handle) };
    true
}

#[cfg(not(unix))]
fn can_open(_library: &str) -> bool {
    false // CUDA builds are Linux builds
}

#[cfg(feature = "cuda")]
fn cuda() -> Result<Device> {
    Device::new_cuda(0).map_err(|err| {
        Error::BackendUnavailable(format!(
            "device 'cuda' is not available: no usable NVIDIA GPU ({err}); this build runs on GPUs of \
             compute capability 9.0 (H100, H200, GH200) with driver 580 or newer"
        ))
    })
}

#[cfg(not(feature = "cuda"))]
fn cuda() -> Result<Device> {
    Err(Error::BackendUnavailable(
        "device 'cuda' is not available in this build of nexttoken: in Node, device 'cuda' loads the \
         package nexttoken-linux-x64-gnu-cuda (npm install nexttoken-linux-x64-gnu-cuda); in Rust, \
         build with the `cuda` feature"
            .into(),
    ))
}

#[cfg(feature = "metal")]
fn metal() -> Result<Device> {
    Device::new_metal(0).map_err(|err| {
        Error::BackendUnavailable(format!("device 'metal' is not available: no usable Metal device ({err})"))
    })
}

#[cfg(not(feature = "metal"))]
fn metal() -> Result<Device> {
    Err(Error::BackendUnavailable(
        "device 'metal' is not available in this build of nexttoken: Metal is in the macOS arm64 \
         (Apple silicon) build; in Rust, build with the `metal` feature"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_named_with_what_installs_it() {
        if cfg!(target_os = "linux") {
            assert!(can_open("libc.so.6"));
        }
        assert!(!can_open("libnexttoken-no-such-library.so.1"));
        for missing in missing_cuda_libraries() {
            let (name, from) = CUDA_LIBRARIES.iter().find(|(name, _)| missing.starts_with(name)).unwrap();
            assert!(missing.contains(from), "{missing} names what installs {name}");
        }
    }

    #[test]
    fn an_unavailable_backend_says_so_and_an_unknown_name_is_invalid() {
        let err = device_from_name("tpu").unwrap_err();
        assert_eq!(err.code(), "ERR_INVALID_ARG");
        if !cfg!(feature = "metal") {
            let err = device_from_name("metal").unwrap_err();
            assert_eq!(err.code(), "ERR_BACKEND_UNAVAILABLE");
            assert!(err.to_string().contains("macOS arm64"), "{err}");
        }
    }
}
