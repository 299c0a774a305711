//! Choosing where the model runs. CPU is always there; CUDA and Metal only in builds made with
//! the `cuda` / `metal` features.

use candle_core::Device;

use crate::error::{Error, Result};

/// Where a model runs when the caller does not say.
pub const DEFAULT_DEVICE: &str = "cpu";

pub fn device_from_name(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda(),
        "metal" => metal(),
        other => Err(Error::InvalidArg(format!("unknown device '{other}': use 'cpu', 'cuda' or 'metal'"))),
    }
}

#[cfg(feature = "cuda")]
fn cuda() -> Result<Device> {
    Device::new_cuda(0).map_err(|err| Error::BackendUnavailable(format!("cuda ({err})")))
}

#[cfg(not(feature = "cuda"))]
fn cuda() -> Result<Device> {
    Err(Error::BackendUnavailable("cuda".into()))
}

#[cfg(feature = "metal")]
fn metal() -> Result<Device> {
    Device::new_metal(0).map_err(|err| Error::BackendUnavailable(format!("metal ({err})")))
}

#[cfg(not(feature = "metal"))]
fn metal() -> Result<Device> {
    Err(Error::BackendUnavailable("metal".into()))
}
