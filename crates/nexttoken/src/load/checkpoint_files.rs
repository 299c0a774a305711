//! A GPT-2 checkpoint as Hugging Face stores it in a model directory, in transformers' order of
//! preference: `model.safetensors`, else `model.safetensors.index.json` and its shards, else
//! `pytorch_model.bin` (`crate::pytorch`: a bounded unpickler that runs no pickled code, and
//! tensors read in place as safetensors files are). Only the headers are read here; `Weights`
//! reads each tensor when it is taken.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device};
use safetensors::tensor::Metadata;
use safetensors::Dtype as StDtype;
use serde::Deserialize;

use super::weights::{canonical, is_ignored, FileTensor, Weights};
use crate::error::{Error, Result};
use crate::files::Source;

/// The largest safetensors header read, as the safetensors crate's own limit.
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// `model.safetensors.index.json`: which shard holds each tensor.
#[derive(Deserialize)]
struct ShardIndex {
    weight_map: HashMap<String, String>,
}

impl Weights {
    /// The checkpoint in model directory `dir`, in transformers' order of preference.
    pub fn from_dir(dir: &Path, device: &Device) -> Result<Self> {
        // `present`, not `is_file`: a FIFO, a directory or a symlink loop under one of these names
        // is refused as what it is (crate::files) rather than skipped for the next kind of checkpoint.
        let single = dir.join("model.safetensors");
        if crate::files::present(&single) {
            return Self::load(&single, device);
        }
        let index = dir.join("model.safetensors.index.json");
        if crate::files::present(&index) {
            return Self::load_sharded(dir, &index, device);
        }
        let pickle = dir.join("pytorch_model.bin");
        if crate::files::present(&pickle) {
            return Self::load_pickle(&pickle, device);
        }
        Err(Error::ModelNotFound(format!(
            "no weights in {}: looked for model.safetensors, model.safetensors.index.json and pytorch_model.bin",
            dir.display()
        )))
    }

    /// The safetensors file `path` (its header: tensors are read when taken).
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let mut weights = Weights::empty(device);
        weights.open_safetensors(path)?;
        Ok(weights)
    }

    /// The checkpoint whose safetensors bytes are `bytes` (`path` names it in messages): read
    /// exactly as a file is, what the loader's fuzz target feeds.
    pub fn from_safetensors_bytes(path: &Path, bytes: Vec<u8>, device: &Device) -> Result<Self> {
        let mut weights = Weights::empty(device);
        weights.add_safetensors(path, Source::Bytes(bytes))?;
        Ok(weights)
    }

    /// The shards `index` names.
    fn load_sharded(dir: &Path, index: &Path, device: &Device) -> Result<Self> {
        let text = crate::files::read_text(index, "model.safetensors.index.json")?;
        let mut weights = Weights::empty(device);
        for shard in Self::shard_files(index, &text)? {
            let path = dir.join(shard);
            if !path.is_file() {
                return Err(Error::missing_file(path, "a shard listed in model.safetensors.index.json"));
            }
            weights.open_safetensors(&path)?;
        }
        Ok(weights)
    }

    /// The shard files that `text`, the contents of the shard index `index`, names: each once, in
    /// name order, and each a plain file name in the model's directory (no separator or drive
    /// letter, not `.` or `..`, no control character), so that no index reaches outside it.
    pub fn shard_files(index: &Path, text: &str) -> Result<Vec<String>> {
        let index_map: ShardIndex =
            serde_json::from_str(text).map_err(|err| Error::invalid_file(index, err))?;
        let mut shards: Vec<String> = index_map.weight_map.into_values().collect();
        shards.sort();
        shards.dedup();
        for shard in &shards {
            let plain = !matches!(shard.as_str(), "" | "." | "..")
                && !shard.chars().any(|c| matches!(c, '/' | '\\' | ':') || c.is_control());
            if !plain {
                return Err(Error::invalid_file(
                    index,
                    format!("shard {shard:?} is not a file name in the directory"),
                ));
            }
        }
        Ok(shards)
    }

    /// `pytorch_model.bin`: its state dict's pickle and zip directory now, each tensor's values
    /// when it is taken (`crate::pytorch`).
    fn load_pickle(path: &Path, device: &Device) -> Result<Self> {
        let file = crate::files::open(path, "pytorch_model.bin")?;
        let mut weights = Weights::empty(device);
        weights.add_pickle(path, Source::File(file))?;
        Ok(weights)
    }

    /// The checkpoint whose `pytorch_model.bin` bytes are `bytes` (`path` names it in messages):
    /// read exactly as a file is, what the pickle reader's fuzz target feeds.
    pub fn from_pytorch_bytes(path: &Path, bytes: Vec<u8>, device: &Device) -> Result<Self> {
        let mut weights = Weights::empty(device);
        weights.add_pickle(path, Source::Bytes(bytes))?;
        Ok(weights)
    }

    /// Files the tensors of the PyTorch checkpoint `file`.
    fn add_pickle(&mut self, path: &Path, file: Source) -> Result<()> {
        let tensors = crate::pytorch::tensors(&file)
            .map_err(|err| Error::invalid_file(path, format!("not a readable PyTorch checkpoint: {err}")))?;
        let mut found = Vec::with_capacity(tensors.len());
        for tensor in tensors {
            let dtype = match tensor.dtype {
                Some(dtype) => dtype,
                None if is_ignored(canonical(&tensor.name)) => continue,
                None => {
                    return Err(Error::invalid_file(
                        path,
                        format!(
                            "tensor '{}' is stored as torch.{}; expected F32, F16 or BF16",
                            tensor.name, tensor.storage
                        ),
                    ))
                }
            };
            found.push(FileTensor { key: tensor.name, shape: tensor.shape, dtype, start: tensor.start });
        }
        self.add_file(path, file, found)
    }

    /// Reads the header of safetensors file `path` and files its tensors, checked as the
    /// safetensors crate checks a whole file (offsets in order, contiguous, sized for their
    /// shape and dtype, ending where the file ends).
    fn open_safetensors(&mut self, path: &Path) -> Result<()> {
        let file = crate::files::open(path, "model.safetensors")?;
        self.add_safetensors(path, Source::File(file))
    }

    /// `open_safetensors` for a file's `source`.
    fn add_safetensors(&mut self, path: &Path, file: Source) -> Result<()> {
        let invalid = |what: &dyn std::fmt::Display| {
            Error::invalid_file(path, format!("not a valid safetensors file ({what})"))
        };
        let file_len = file.size().map_err(|err| Error::invalid_file(path, err))?;
        let mut len_bytes = [0u8; 8];
        file.read_at(0, &mut len_bytes).map_err(|_| invalid(&"shorter than its 8-byte header length"))?;
        let header_len = u64::from_le_bytes(len_bytes);
        if header_len > MAX_HEADER_BYTES {
            return Err(invalid(&format!(
                "a header of {header_len} bytes; at most {MAX_HEADER_BYTES} are read"
            )));
        }
        let data_start = 8 + header_len;
        if data_start > file_len {
            return Err(invalid(&format!("a header of {header_len} bytes in a file of {file_len}")));
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_at(8, &mut header).map_err(|err| invalid(&err))?;
        let metadata: Metadata =
            serde_json::from_slice(&header).map_err(|err| invalid(&format!("header: {err}")))?;
        let data_len = metadata.data_len() as u64;
        if data_start + data_len != file_len {
            return Err(invalid(&format!(
                "its tensors take {data_len} bytes after the header but the file has {}",
                file_len - data_start
            )));
        }
        let mut found = Vec::new();
        for (key, info) in metadata.tensors() {
            let dtype = match info.dtype {
                StDtype::F32 => DType::F32,
                StDtype::F16 => DType::F16,
                StDtype::BF16 => DType::BF16,
                _ if is_ignored(canonical(&key)) => continue,
                other => {
                    return Err(Error::invalid_file(
                        path,
                        format!("tensor '{key}' is stored as {other:?}; expected F32, F16 or BF16"),
                    ))
                }
            };
            let start = data_start + info.data_offsets.0 as u64;
            found.push(FileTensor { key, shape: info.shape.clone(), dtype, start });
        }
        self.add_file(path, file, found)
    }
}
