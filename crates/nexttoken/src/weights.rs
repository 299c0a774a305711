//! Reads `model.safetensors` as written by Hugging Face for GPT-2 and hands out tensors by their
//! canonical name (`wte.weight`, `h.0.attn.c_attn.weight`, ...), checked against the expected
//! shape before anything is built from them.

use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use memmap2::Mmap;
use safetensors::{Dtype as StDtype, SafeTensors};

use crate::error::{Error, Result};

/// Tensors of a GPT-2 checkpoint, keyed by their name without the optional `transformer.` prefix.
/// The file stays mapped and each tensor is read when it is taken, so a weight that is repacked
/// for the CPU kernels goes straight from the file to its packed form.
pub struct Weights {
    path: PathBuf,
    mmap: Mmap,
    tensors: HashMap<String, Stored>,
    device: Device,
}

/// Where a tensor's bytes are in the map, and how they are stored.
struct Stored {
    dtype: DType,
    shape: Vec<usize>,
    bytes: Range<usize>,
}

impl Weights {
    /// Maps `path` and reads its header; tensors come out as f32 on `device` (f16 and bf16
    /// storage is widened when taken).
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let file = File::open(path).map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => Error::missing_file(path.to_path_buf(), "model.safetensors"),
            _ => Error::invalid_file(path, err),
        })?;
        // SAFETY: the map is read-only; like every reader of a mapped file, we rely on nobody
        // truncating the file while the model loads.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|err| Error::invalid_file(path, err))?;
        let file = SafeTensors::deserialize(&mmap)
            .map_err(|err| Error::invalid_file(path, format!("not a valid safetensors file ({err})")))?;

        let mut tensors = HashMap::new();
        for (key, view) in file.tensors() {
            let name = key.strip_prefix("transformer.").unwrap_or(&key);
            if is_ignored(name) {
                continue;
            }
            let dtype = match view.dtype() {
                StDtype::F32 => DType::F32,
                StDtype::F16 => DType::F16,
                StDtype::BF16 => DType::BF16,
                other => {
                    return Err(Error::invalid_file(
                        path,
                        format!("tensor '{key}' is stored as {other:?}; expected F32, F16 or BF16"),
                    ))
                }
            };
            let start = view.data().as_ptr() as usize - mmap.as_ptr() as usize;
            let bytes = start..start + view.data().len();
            tensors.insert(name.to_string(), Stored { dtype, shape: view.shape().to_vec(), bytes });
        }
        Ok(Weights { path: path.to_path_buf(), mmap, tensors, device: device.clone() })
    }

    /// The device tensors are taken to.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Takes out the tensor called `name`, which must have exactly `shape`, as an f32 tensor.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let stored = self.take_stored(name, shape)?;
        Ok(self.decode(&stored)?.to_device(&self.device)?)
    }

    /// Takes out the tensor called `name`, which must have exactly `shape`, and hands its values
    /// (row-major, f32) to `read`: straight from the file when it stores them as aligned f32.
    pub fn take_values<R>(
        &mut self,
        name: &str,
        shape: &[usize],
        read: impl FnOnce(&[f32]) -> R,
    ) -> Result<R> {
        let stored = self.take_stored(name, shape)?;
        let bytes = &self.mmap[stored.bytes.clone()];
        if stored.dtype == DType::F32 && cfg!(target_endian = "little") {
            // SAFETY: any 4 bytes are a valid f32; align_to only yields whole aligned values.
            if let ([], values, []) = unsafe { bytes.align_to::<f32>() } {
                return Ok(read(values));
            }
        }
        Ok(read(&self.decode(&stored)?.flatten_all()?.to_vec1::<f32>()?))
    }

    /// A stored tensor as f32 on the CPU.
    fn decode(&self, stored: &Stored) -> Result<Tensor> {
        let bytes = &self.mmap[stored.bytes.clone()];
        Ok(Tensor::from_raw_buffer(bytes, stored.dtype, &stored.shape, &Device::Cpu)?.to_dtype(DType::F32)?)
    }

    fn take_stored(&mut self, name: &str, shape: &[usize]) -> Result<Stored> {
        let stored = self
            .tensors
            .remove(name)
            .ok_or_else(|| Error::invalid_file(&self.path, format!("tensor '{name}' is missing")))?;
        if stored.shape != shape {
            return Err(Error::invalid_file(
                &self.path,
                format!("tensor '{name}' has shape {:?}; the config implies {shape:?}", stored.shape),
            ));
        }
        Ok(stored)
    }
}

/// Buffers some checkpoints carry that are not weights: the causal mask (`attn.bias`,
/// `attn.masked_bias`), and `lm_head.weight`, which GPT-2 ties to `wte`.
fn is_ignored(name: &str) -> bool {
    name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias") || name == "lm_head.weight"
}
