//! GGUF files (llama.cpp's format) of GPT-2: the container (`reader`, `value`, `types`), its
//! tensor types to f32 (`dequantize`), and the mapping to our model (`gpt2`, `tokenizer`).

mod dequantize;
mod gpt2;
mod reader;
mod tokenizer;
mod types;
mod value;

pub(crate) use dequantize::{bad_scale, to_f32};
pub use reader::{GgufFile, TensorInfo};
pub use types::GgmlType;
pub use value::{Array, Value};

use candle_core::Device;

use crate::config::Config;
use crate::error::Result;
use crate::tokenizer::Tokenizer;
use crate::weights::Weights;

/// What a GGUF file holds, mapped to our model.
pub struct GgufModel {
    pub config: Config,
    pub weights: Weights,
    pub tokenizer: Tokenizer,
}

/// Reads the GGUF file at `path`: its config, tokenizer and (not yet read) tensors.
pub fn load(path: &std::path::Path, device: &Device) -> Result<GgufModel> {
    from_file(GgufFile::open(path)?, device)
}

/// What the GGUF `file` (opened, or read from memory by the fuzz target) holds.
pub fn from_file(file: GgufFile, device: &Device) -> Result<GgufModel> {
    let config = gpt2::config(&file)?;
    let tensors = gpt2::tensors(&file, &config)?;
    let tokenizer = tokenizer::tokenizer(&file)?;
    let weights = Weights::from_gguf(file.path, file.file, tensors, device);
    Ok(GgufModel { config, weights, tokenizer })
}

/// The tokenizer of the GGUF file at `path` (its metadata only: no tensor is read).
pub fn load_tokenizer(path: &std::path::Path) -> Result<Tokenizer> {
    tokenizer::tokenizer(&GgufFile::open(path)?)
}

/// Whether `path` names a GGUF file by its extension (`.gguf`, any case).
pub fn is_gguf_name(path: &std::path::Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}
