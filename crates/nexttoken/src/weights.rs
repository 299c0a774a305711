//! Reads a GPT-2 checkpoint as Hugging Face stores it, in transformers' order of preference:
//! `model.safetensors`, else `model.safetensors.index.json` and its shards, else
//! `pytorch_model.bin` (read by candle's restricted unpickler, which builds tensors and never runs
//! pickled code). Tensors are handed out by their canonical name (`wte.weight`,
//! `h.0.attn.c_attn.weight`, ...), checked against the expected shape before anything is built
//! from them.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use safetensors::{Dtype as StDtype, SafeTensors};
use serde::Deserialize;

use crate::error::{Error, Result};

/// Tensors of a GPT-2 checkpoint, keyed by their name without the optional `transformer.` prefix.
/// Safetensors files are read whole (not mapped: a file truncated under a mapping kills the
/// process with SIGBUS) and each tensor is decoded when it is taken, so a weight that is repacked
/// for the CPU kernels goes straight from the file's bytes to its packed form; the bytes are
/// freed with the `Weights` once the model is built.
pub struct Weights {
    files: Vec<FileBytes>,
    tensors: HashMap<String, Stored>,
    device: Device,
}

struct FileBytes {
    path: PathBuf,
    bytes: Vec<u8>,
}

/// A tensor's shape and where its values are.
struct Stored {
    shape: Vec<usize>,
    /// The file it came from, for messages.
    path: PathBuf,
    values: Values,
}

enum Values {
    /// Bytes of `files[file]`, stored as `dtype`.
    InFile { file: usize, dtype: DType, bytes: Range<usize> },
    /// Already read (pytorch_model.bin).
    Read(Tensor),
}

/// `model.safetensors.index.json`: which shard holds each tensor.
#[derive(Deserialize)]
struct ShardIndex {
    weight_map: HashMap<String, String>,
}

impl Weights {
    /// The checkpoint in model directory `dir`, in transformers' order of preference.
    pub fn from_dir(dir: &Path, device: &Device) -> Result<Self> {
        // `exists`, not `is_file`: a FIFO or a directory under one of these names is refused as
        // what it is (crate::files) rather than skipped for the next kind of checkpoint.
        let single = dir.join("model.safetensors");
        if single.exists() {
            return Self::load(&single, device);
        }
        let index = dir.join("model.safetensors.index.json");
        if index.exists() {
            return Self::load_sharded(dir, &index, device);
        }
        let pickle = dir.join("pytorch_model.bin");
        if pickle.exists() {
            return Self::load_pickle(&pickle, device);
        }
        Err(Error::ModelNotFound(format!(
            "no weights in {}: looked for model.safetensors, model.safetensors.index.json and pytorch_model.bin",
            dir.display()
        )))
    }

    /// Reads the safetensors file `path` and its header; tensors come out as f32 on `device`
    /// (f16 and bf16 storage is widened when taken).
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        Self::from_safetensors_bytes(path, crate::files::read(path, "model.safetensors")?, device)
    }

    /// The checkpoint held in `bytes`, a safetensors file's contents (`path` names it in
    /// messages): what `load` does once the file is read, and what the loader fuzz target feeds.
    pub fn from_safetensors_bytes(path: &Path, bytes: Vec<u8>, device: &Device) -> Result<Self> {
        let mut weights = Weights { files: Vec::new(), tensors: HashMap::new(), device: device.clone() };
        weights.add_safetensors(path, bytes)?;
        Ok(weights)
    }

    /// The shards `index` names, each mapped.
    fn load_sharded(dir: &Path, index: &Path, device: &Device) -> Result<Self> {
        let text = crate::files::read_text(index, "model.safetensors.index.json")?;
        let index_map: ShardIndex =
            serde_json::from_str(&text).map_err(|err| Error::invalid_file(index, err))?;
        let mut shards: Vec<&String> = index_map.weight_map.values().collect();
        shards.sort();
        shards.dedup();
        let mut weights = Weights { files: Vec::new(), tensors: HashMap::new(), device: device.clone() };
        for shard in shards {
            if Path::new(shard).components().count() != 1 {
                return Err(Error::invalid_file(
                    index,
                    format!("shard '{shard}' is not a file name in the directory"),
                ));
            }
            let path = dir.join(shard);
            if !path.is_file() {
                return Err(Error::missing_file(path, "a shard listed in model.safetensors.index.json"));
            }
            weights.add_safetensors(&path, crate::files::read(&path, "model.safetensors")?)?;
        }
        Ok(weights)
    }

    /// `pytorch_model.bin`, read whole: a zip of pickled tensor references and their storages.
    fn load_pickle(path: &Path, device: &Device) -> Result<Self> {
        crate::files::check_regular(path, "pytorch_model.bin")?;
        let all = candle_core::pickle::read_all(path)
            .map_err(|err| Error::invalid_file(path, format!("not a readable PyTorch checkpoint ({err})")))?;
        let mut weights = Weights { files: Vec::new(), tensors: HashMap::new(), device: device.clone() };
        for (key, tensor) in all {
            if !matches!(tensor.dtype(), DType::F32 | DType::F16 | DType::BF16) {
                if is_ignored(canonical(&key)) {
                    continue;
                }
                return Err(Error::invalid_file(
                    path,
                    format!("tensor '{key}' is stored as {:?}; expected F32, F16 or BF16", tensor.dtype()),
                ));
            }
            let shape = tensor.dims().to_vec();
            weights.insert(
                path,
                &key,
                Stored { shape, path: path.to_path_buf(), values: Values::Read(tensor) },
            )?;
        }
        Ok(weights)
    }

    fn add_safetensors(&mut self, path: &Path, bytes: Vec<u8>) -> Result<()> {
        let index = self.files.len();
        let mut found = Vec::new();
        {
            let file = SafeTensors::deserialize(&bytes)
                .map_err(|err| Error::invalid_file(path, format!("not a valid safetensors file ({err})")))?;
            for (key, view) in file.tensors() {
                let dtype = match view.dtype() {
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
                let start = view.data().as_ptr() as usize - bytes.as_ptr() as usize;
                let bytes = start..start + view.data().len();
                let values = Values::InFile { file: index, dtype, bytes };
                found.push((key, Stored { shape: view.shape().to_vec(), path: path.to_path_buf(), values }));
            }
        }
        self.files.push(FileBytes { path: path.to_path_buf(), bytes });
        for (key, stored) in found {
            self.insert(path, &key, stored)?;
        }
        Ok(())
    }

    /// Files a tensor under its canonical name. A name that comes twice (in two shards, or with
    /// and without the `transformer.` prefix) is refused: which copy is meant is not knowable.
    fn insert(&mut self, path: &Path, key: &str, stored: Stored) -> Result<()> {
        let name = canonical(key);
        if is_ignored(name) {
            return Ok(());
        }
        if let Some(first) = self.tensors.insert(name.to_string(), stored) {
            return Err(Error::invalid_file(
                path,
                format!("tensor '{name}' appears twice (also in {})", first.path.display()),
            ));
        }
        Ok(())
    }

    /// The device tensors are taken to.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Takes out the tensor called `name`, which must have exactly `shape`, as an f32 tensor.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let stored = self.take_stored(name, shape)?;
        let tensor = self.decode(&stored)?;
        check_finite(name, &stored.path, &tensor.flatten_all()?.to_vec1::<f32>()?)?;
        Ok(tensor.to_device(&self.device)?)
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
        if let Values::InFile { file, dtype: DType::F32, bytes } = &stored.values {
            let bytes = &self.files[*file].bytes[bytes.clone()];
            if cfg!(target_endian = "little") {
                // SAFETY: any 4 bytes are a valid f32; align_to only yields whole aligned values.
                if let ([], values, []) = unsafe { bytes.align_to::<f32>() } {
                    check_finite(name, &stored.path, values)?;
                    return Ok(read(values));
                }
            }
        }
        let values = self.decode(&stored)?.flatten_all()?.to_vec1::<f32>()?;
        check_finite(name, &stored.path, &values)?;
        Ok(read(&values))
    }

    /// A stored tensor as f32 on the CPU.
    fn decode(&self, stored: &Stored) -> Result<Tensor> {
        let tensor = match &stored.values {
            Values::InFile { file, dtype, bytes } => {
                let bytes = &self.files[*file].bytes[bytes.clone()];
                Tensor::from_raw_buffer(bytes, *dtype, &stored.shape, &Device::Cpu)?
            }
            Values::Read(tensor) => tensor.clone(),
        };
        Ok(tensor.to_dtype(DType::F32)?)
    }

    /// Where the checkpoint is, for messages: its (first) file.
    fn path(&self) -> PathBuf {
        self.files.first().map_or_else(|| PathBuf::from("the checkpoint"), |f| f.path.clone())
    }

    fn take_stored(&mut self, name: &str, shape: &[usize]) -> Result<Stored> {
        let stored = self
            .tensors
            .remove(name)
            .ok_or_else(|| Error::invalid_file(&self.path(), format!("tensor '{name}' is missing")))?;
        if stored.shape != shape {
            return Err(Error::invalid_file(
                &stored.path,
                format!("tensor '{name}' has shape {:?}; the config implies {shape:?}", stored.shape),
            ));
        }
        Ok(stored)
    }
}

/// A weight that is NaN or infinite makes every logit NaN (and greedy decoding pick id 0 forever):
/// refused at load, naming the tensor, rather than discovered in the output.
fn check_finite(name: &str, path: &Path, values: &[f32]) -> Result<()> {
    // v * 0 is 0 for every finite v and NaN for NaN or an infinity: the sum is 0 exactly when all
    // are finite. Summing vectorises; searching would not.
    let sum: f32 = values.chunks(4096).map(|c| c.iter().map(|v| v * 0.0).sum::<f32>()).sum();
    if sum == 0.0 {
        return Ok(());
    }
    let (index, value) = values.iter().enumerate().find(|(_, v)| !v.is_finite()).unwrap_or((0, &f32::NAN));
    Err(Error::invalid_file(
        path,
        format!("tensor '{name}' holds {value} at index {index}: its weights must be finite"),
    ))
}

/// A checkpoint key without the `transformer.` prefix that GPT2LMHeadModel adds.
fn canonical(key: &str) -> &str {
    key.strip_prefix("transformer.").unwrap_or(key)
}

/// Buffers some checkpoints carry that are not weights: the causal mask (`attn.bias`,
/// `attn.masked_bias`), and `lm_head.weight`, which GPT-2 ties to `wte`.
fn is_ignored(name: &str) -> bool {
    name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias") || name == "lm_head.weight"
}
