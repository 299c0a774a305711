//! The number formats a model's weights can be held in. On the CPU backend activations, the KV
//! cache, layer norms and biases stay f32 whatever the choice; only the weight matrices (and the
//! token embeddings, which are also the tied output head and the largest matrix) take it. The
//! device backend computes in bf16 or fp16 when the weights are, as PyTorch does on a GPU.

use crate::error::{Error, Result};

/// How the weight matrices are held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightDtype {
    F32,
    /// bfloat16: f32's exponent with 8 bits of mantissa (rounded to nearest even).
    Bf16,
    /// IEEE half precision (rounded to nearest even; values beyond ±65504 become infinite and are
    /// refused at load).
    F16,
    /// llama.cpp's Q8_0: blocks of 32 weights along the input dimension, each 32 int8 and one f16
    /// scale (8.5 bits per weight).
    Q8_0,
    /// llama.cpp's Q4_0: blocks of 32 weights, each 32 4-bit values (offset by 8) and one f16
    /// scale (4.5 bits per weight).
    Q4_0,
}

impl WeightDtype {
    /// Every dtype, in the order the API lists them.
    pub const ALL: [WeightDtype; 5] =
        [WeightDtype::F32, WeightDtype::Bf16, WeightDtype::F16, WeightDtype::Q8_0, WeightDtype::Q4_0];

    /// q8 or q4: llama.cpp's blocks of integers with a scale.
    pub fn is_quantized(self) -> bool {
        matches!(self, WeightDtype::Q8_0 | WeightDtype::Q4_0)
    }

    /// The API's name: transformers.js' spellings (`fp32`, `fp16`, `q8`, `q4`) plus `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            WeightDtype::F32 => "fp32",
            WeightDtype::Bf16 => "bf16",
            WeightDtype::F16 => "fp16",
            WeightDtype::Q8_0 => "q8",
            WeightDtype::Q4_0 => "q4",
        }
    }

    /// Parses an API name; the other common spellings (`f32`, `float16`, `q8_0`, ...) are taken too.
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "fp32" | "f32" | "float32" => WeightDtype::F32,
            "bf16" | "bfloat16" => WeightDtype::Bf16,
            "fp16" | "f16" | "float16" => WeightDtype::F16,
            "q8" | "q8_0" => WeightDtype::Q8_0,
            "q4" | "q4_0" => WeightDtype::Q4_0,
            other => {
                let names: Vec<&str> = Self::ALL.iter().map(|d| d.name()).collect();
                return Err(Error::InvalidArg(format!(
                    "unknown dtype '{other}': use one of {}",
                    names.join(", ")
                )));
            }
        })
    }

    /// The dtype that holds a checkpoint's values without widening or losing any: the stored
    /// type for f32, f16 and bf16 files.
    pub fn of_stored(dtype: candle_core::DType) -> Self {
        match dtype {
            candle_core::DType::F16 => WeightDtype::F16,
            candle_core::DType::BF16 => WeightDtype::Bf16,
            _ => WeightDtype::F32,
        }
    }
}

impl std::fmt::Display for WeightDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
