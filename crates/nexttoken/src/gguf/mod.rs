//! GGUF files (llama.cpp's format): the container (`reader`: header, metadata `value`s, tensor
//! infos), its tensor `types`, and their values to f32 (`dequantize`). What a GGUF file of GPT-2
//! means to our model is `crate::load`'s.

mod dequantize;
mod reader;
mod types;
mod value;

pub(crate) use dequantize::{bad_scale, to_f32};
pub use reader::{GgufFile, TensorInfo};
pub use types::GgmlType;
pub use value::{Array, Value};

/// Whether `path` names a GGUF file by its extension (`.gguf`, any case).
pub fn is_gguf_name(path: &std::path::Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}
