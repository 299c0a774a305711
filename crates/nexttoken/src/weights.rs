//! Reads `model.safetensors` as written by Hugging Face for GPT-2 and hands out tensors by their
//! canonical name (`wte.weight`, `h.0.attn.c_attn.weight`, ...), checked against the expected
//! shape before anything is built from them.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use memmap2::Mmap;
use safetensors::{Dtype as StDtype, SafeTensors};

use crate::error::{Error, Result};

/// Tensors of a GPT-2 checkpoint, keyed by their name without the optional `transformer.` prefix.
pub struct Weights {
    path: PathBuf,
    tensors: HashMap<String, Tensor>,
}

impl Weights {
    /// Loads every weight in `path` as f32 (f16 and bf16 storage is widened on load).
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let file = File::open(path).map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => Error::missing_file(path.to_path_buf(), "model.safetensors"),
            _ => Error::invalid_file(path, err),
        })?;
        // SAFETY: the map is read-only and dropped before this function returns; the tensors
        // below own copies of the bytes.
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
            let tensor = Tensor::from_raw_buffer(view.data(), dtype, view.shape(), &Device::Cpu)?
                .to_dtype(DType::F32)?
                .to_device(device)?;
            tensors.insert(name.to_string(), tensor);
        }
        Ok(Weights { path: path.to_path_buf(), tensors })
    }

    /// The tensor called `name`, which must have exactly `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let tensor = self
            .tensors
            .get(name)
            .ok_or_else(|| Error::invalid_file(&self.path, format!("tensor '{name}' is missing")))?;
        if tensor.dims() != shape {
            return Err(Error::invalid_file(
                &self.path,
                format!("tensor '{name}' has shape {:?}; the config implies {shape:?}", tensor.dims()),
            ));
        }
        Ok(tensor.clone())
    }
}

/// Buffers some checkpoints carry that are not weights: the causal mask (`attn.bias`,
/// `attn.masked_bias`), and `lm_head.weight`, which GPT-2 ties to `wte`.
fn is_ignored(name: &str) -> bool {
    name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias") || name == "lm_head.weight"
}
