//! `config.json` of the GPT-2 family (gpt2, distilgpt2, gpt2-medium/large/xl), read with the
//! Hugging Face field names.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The activation between the two MLP projections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `gelu_new` / `gelu_pytorch_tanh`: the tanh approximation every GPT-2 checkpoint uses.
    GeluTanh,
    /// `gelu`: the exact erf form.
    GeluErf,
    Relu,
}

impl Activation {
    fn from_hf_name(name: &str) -> Result<Self> {
        match name {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Activation::GeluTanh),
            "gelu" => Ok(Activation::GeluErf),
            "relu" => Ok(Activation::Relu),
            other => Err(Error::ModelInvalid(format!("unsupported activation_function '{other}'"))),
        }
    }
}

/// config.json's fields as read; also what a GGUF file's metadata is mapped to.
#[derive(Debug, Deserialize)]
pub(crate) struct RawConfig {
    pub(crate) model_type: Option<String>,
    pub(crate) n_layer: usize,
    pub(crate) n_head: usize,
    pub(crate) n_embd: usize,
    pub(crate) n_positions: usize,
    pub(crate) vocab_size: usize,
    #[serde(default = "default_eps")]
    pub(crate) layer_norm_epsilon: f64,
    #[serde(default = "default_activation")]
    pub(crate) activation_function: String,
    pub(crate) n_inner: Option<usize>,
    pub(crate) bos_token_id: Option<u32>,
    pub(crate) eos_token_id: Option<u32>,
}

fn default_eps() -> f64 {
    1e-5
}

fn default_activation() -> String {
    "gelu_new".to_string()
}

/// A validated GPT-2 configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    /// Width of the MLP's hidden layer (`n_inner`, 4 * n_embd when absent).
    pub n_inner: usize,
    /// The hard context limit: there are no position embeddings past it.
    pub n_positions: usize,
    pub vocab_size: usize,
    pub layer_norm_epsilon: f64,
    pub activation: Activation,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
}

/// The largest n_layer, n_head, n_embd, n_inner or n_positions accepted.
const MAX_SIZE: usize = 1 << 24;

/// serde_json places a value of the wrong type by line and column only: this names its field
/// (`n_embd is "768": invalid type: string "768", expected usize`).
fn wrong_field(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let Some(map) = value.as_object() else {
        return Some(format!("the file holds {}, not a JSON object", json_kind(&value)));
    };
    fn check<T: serde::de::DeserializeOwned>(
        map: &serde_json::Map<String, serde_json::Value>,
        name: &str,
    ) -> Option<String> {
        let value = map.get(name)?;
        let err = serde_json::from_value::<T>(value.clone()).err()?;
        Some(format!("{name} is {value}: {err}"))
    }
    let sizes = ["n_layer", "n_head", "n_embd", "n_positions", "vocab_size"];
    sizes
        .iter()
        .find_map(|name| check::<usize>(map, name))
        .or_else(|| check::<Option<usize>>(map, "n_inner"))
        .or_else(|| check::<f64>(map, "layer_norm_epsilon"))
        .or_else(|| check::<Option<String>>(map, "model_type"))
        .or_else(|| check::<String>(map, "activation_function"))
        .or_else(|| check::<Option<u32>>(map, "bos_token_id"))
        .or_else(|| check::<Option<u32>>(map, "eos_token_id"))
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = crate::files::read_text(path, "config.json")?;
        Self::from_json(&text).map_err(|err| match err {
            Error::ModelInvalid(msg) => Error::invalid_file(path, msg),
            other => other,
        })
    }

    pub fn from_json(text: &str) -> Result<Self> {
        let raw: RawConfig = serde_json::from_str(text).map_err(|err| {
            Error::ModelInvalid(match wrong_field(text) {
                Some(field) => format!("not a GPT-2 config: {field}"),
                None => format!("not a GPT-2 config: {err}"),
            })
        })?;
        Self::from_raw(raw)
    }

    /// Checks `raw` (a config.json's fields, or a GGUF file's metadata under their names).
    pub(crate) fn from_raw(raw: RawConfig) -> Result<Self> {
        match raw.model_type.as_deref() {
            Some("gpt2") => {}
            Some(other) => {
                return Err(Error::ModelInvalid(format!(
                    "model_type is '{other}', but nexttoken runs only 'gpt2' checkpoints"
                )))
            }
            None => return Err(Error::ModelInvalid("model_type is missing (expected 'gpt2')".into())),
        }
        let positive = [
            ("n_layer", raw.n_layer),
            ("n_head", raw.n_head),
            ("n_embd", raw.n_embd),
            ("n_positions", raw.n_positions),
            ("vocab_size", raw.vocab_size),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(Error::ModelInvalid(format!("{name} must be positive")));
        }
        // Far past any model, and small enough that no size computed from them (3 * n_embd,
        // 4 * n_embd, shapes) can overflow.
        let sizes = [("n_layer", raw.n_layer), ("n_head", raw.n_head), ("n_embd", raw.n_embd)];
        let sizes = sizes.into_iter().chain([("n_positions", raw.n_positions)]);
        if let Some((name, value)) =
            sizes.chain(raw.n_inner.map(|n| ("n_inner", n))).find(|(_, v)| *v > MAX_SIZE)
        {
            return Err(Error::ModelInvalid(format!("{name} ({value}) is larger than {MAX_SIZE}")));
        }
        if !raw.n_embd.is_multiple_of(raw.n_head) {
            return Err(Error::ModelInvalid(format!(
                "n_embd ({}) is not divisible by n_head ({})",
                raw.n_embd, raw.n_head
            )));
        }
        if raw.vocab_size > u32::MAX as usize {
            return Err(Error::ModelInvalid("vocab_size does not fit token ids".into()));
        }
        // 4 * n_embd is the default MLP width and the loader computes 3 * n_embd (c_attn): a width
        // that overflows them is no model (its weights could not be stored either).
        let Some(default_inner) = raw.n_embd.checked_mul(4) else {
            return Err(Error::ModelInvalid(format!("n_embd ({}) is too large", raw.n_embd)));
        };
        Ok(Config {
            n_layer: raw.n_layer,
            n_head: raw.n_head,
            n_embd: raw.n_embd,
            n_inner: raw.n_inner.unwrap_or(default_inner),
            n_positions: raw.n_positions,
            vocab_size: raw.vocab_size,
            layer_norm_epsilon: raw.layer_norm_epsilon,
            activation: Activation::from_hf_name(&raw.activation_function)?,
            bos_token_id: raw.bos_token_id,
            eos_token_id: raw.eos_token_id,
        })
    }

    pub fn head_size(&self) -> usize {
        self.n_embd / self.n_head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GPT2: &str = r#"{"model_type":"gpt2","n_layer":12,"n_head":12,"n_embd":768,
        "n_positions":1024,"n_ctx":1024,"vocab_size":50257,"layer_norm_epsilon":1e-5,
        "activation_function":"gelu_new","bos_token_id":50256,"eos_token_id":50256}"#;

    #[test]
    fn reads_the_gpt2_config() {
        let cfg = Config::from_json(GPT2).unwrap();
        assert_eq!((cfg.n_layer, cfg.n_head, cfg.n_embd), (12, 12, 768));
        assert_eq!(cfg.n_inner, 3072);
        assert_eq!(cfg.head_size(), 64);
        assert_eq!(cfg.activation, Activation::GeluTanh);
        assert_eq!(cfg.eos_token_id, Some(50256));
    }

    #[test]
    fn refuses_other_architectures() {
        let llama = GPT2.replace("\"gpt2\"", "\"llama\"");
        let err = Config::from_json(&llama).unwrap_err();
        assert_eq!(err.code(), "ERR_MODEL_INVALID");
        assert!(err.to_string().contains("llama"), "{err}");
    }

    #[test]
    fn refuses_heads_that_do_not_divide_the_width() {
        let bad = GPT2.replace("\"n_head\":12", "\"n_head\":7");
        assert_eq!(Config::from_json(&bad).unwrap_err().code(), "ERR_MODEL_INVALID");
    }

    /// 4 * n_embd overflowed (a panic where overflow is checked; a wrong n_inner elsewhere).
    #[test]
    fn refuses_a_width_whose_multiples_overflow() {
        let huge = GPT2.replace("\"n_embd\":768", &format!("\"n_embd\":{}", 1usize << 62));
        let huge = huge.replace("\"n_head\":12", "\"n_head\":1");
        assert_eq!(Config::from_json(&huge).unwrap_err().code(), "ERR_MODEL_INVALID");
    }

    #[test]
    fn names_the_field_of_the_wrong_type() {
        for (field, bad) in
            [("n_embd", "\"768\""), ("n_layer", "2.5"), ("n_head", "-12"), ("eos_token_id", "-1")]
        {
            let json = GPT2.replacen(&format!("\"{field}\":"), &format!("\"{field}\":{bad},\"was\":"), 1);
            let err = Config::from_json(&json).unwrap_err().to_string();
            assert!(err.contains(&format!("{field} is {bad}")), "{err}");
        }
    }

    #[test]
    fn refuses_sizes_past_any_model() {
        let huge = GPT2.replace("\"n_embd\":768", &format!("\"n_embd\":{}", 1usize << 62));
        let err = Config::from_json(&huge).unwrap_err().to_string();
        assert!(err.contains("n_embd (4611686018427387904) is larger than"), "{err}");
    }

    #[test]
    fn refuses_garbage() {
        assert_eq!(Config::from_json("{not json").unwrap_err().code(), "ERR_MODEL_INVALID");
        assert_eq!(Config::from_json("{}").unwrap_err().code(), "ERR_MODEL_INVALID");
    }
}
