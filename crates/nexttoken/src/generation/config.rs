//! The model's generation defaults: `generation_config.json` as transformers reads it, falling
//! back to `config.json`'s special tokens when the file is absent (transformers'
//! `GenerationConfig.from_model_config`). A call's own options override these; what neither sets
//! takes transformers' global defaults (`options.rs`).

use std::path::Path;

use serde::Deserialize;

use crate::config::Config;
use crate::error::{Error, Result};

/// One token id or several: `eos_token_id` is either in transformers' files.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(u32),
    Many(Vec<u32>),
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Vec<u32>, D::Error> {
    Ok(match Option::<OneOrMany>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(OneOrMany::One(id)) => vec![id],
        Some(OneOrMany::Many(ids)) => ids,
    })
}

/// A list that transformers may also write as `null`.
fn list_or_null<'de, D, T>(deserializer: D) -> std::result::Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// `sequence_bias` as a list of `[[ids], bias]` pairs, or as transformers saves its dict: keys
/// are Python tuples written out, `"(1, 2)"` or `"(1,)"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum SequenceBias {
    Pairs(Vec<(Vec<u32>, f32)>),
    Dict(std::collections::BTreeMap<String, f32>),
}

fn sequence_bias<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Vec<(Vec<u32>, f32)>, D::Error> {
    let parse_tuple = |key: &str| -> Option<Vec<u32>> {
        let inner = key.trim().strip_prefix('(')?.strip_suffix(')')?;
        inner.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|id| id.parse().ok()).collect()
    };
    Ok(match Option::<SequenceBias>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(SequenceBias::Pairs(pairs)) => pairs,
        Some(SequenceBias::Dict(dict)) => dict
            .into_iter()
            .map(|(key, bias)| {
                let ids = parse_tuple(&key).ok_or_else(|| {
                    serde::de::Error::custom(format!("sequence_bias key {key:?} is not a tuple of ids"))
                })?;
                Ok((ids, bias))
            })
            .collect::<std::result::Result<_, D::Error>>()?,
    })
}

/// `stop_strings`: one string or several.
fn strings<'de, D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(s)) => s,
    })
}

/// The model's own defaults for `generate`, as `generation_config.json` stores them. None: the
/// file does not set it. Unknown keys are ignored, as transformers keeps them aside.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct GenerationConfig {
    pub max_length: Option<usize>,
    pub max_new_tokens: Option<usize>,
    pub do_sample: Option<bool>,
    pub temperature: Option<f32>,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    pub min_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
    pub no_repeat_ngram_size: Option<usize>,
    /// Any of these ends a sequence; empty: none does.
    #[serde(rename = "eos_token_id", deserialize_with = "one_or_many")]
    pub eos_token_ids: Vec<u32>,
    pub pad_token_id: Option<u32>,
    pub min_length: Option<usize>,
    pub min_new_tokens: Option<usize>,
    #[serde(deserialize_with = "list_or_null")]
    pub bad_words_ids: Vec<Vec<u32>>,
    #[serde(deserialize_with = "sequence_bias")]
    pub sequence_bias: Vec<(Vec<u32>, f32)>,
    #[serde(deserialize_with = "list_or_null")]
    pub suppress_tokens: Vec<u32>,
    #[serde(deserialize_with = "list_or_null")]
    pub begin_suppress_tokens: Vec<u32>,
    #[serde(rename = "forced_eos_token_id", deserialize_with = "one_or_many")]
    pub forced_eos_token_ids: Vec<u32>,
    pub typical_p: Option<f32>,
    pub epsilon_cutoff: Option<f32>,
    pub eta_cutoff: Option<f32>,
    pub renormalize_logits: Option<bool>,
    pub num_return_sequences: Option<usize>,
    pub num_beams: Option<usize>,
    pub length_penalty: Option<f32>,
    pub early_stopping: Option<super::options::EarlyStopping>,
    #[serde(deserialize_with = "strings")]
    pub stop_strings: Vec<String>,
    /// Where generation from an empty input starts.
    pub bos_token_id: Option<u32>,
}

impl GenerationConfig {
    /// `dir/generation_config.json` if present, else the special tokens of `config`.
    pub fn from_dir(dir: &Path, config: &Config) -> Result<Self> {
        let path = dir.join("generation_config.json");
        match crate::files::read_text(&path, "generation_config.json") {
            Ok(text) => Self::from_json(&text).map_err(|err| Error::invalid_file(&path, err)),
            Err(Error::ModelNotFound(_)) => Ok(GenerationConfig {
                bos_token_id: config.bos_token_id,
                eos_token_ids: config.eos_token_id.into_iter().collect(),
                ..GenerationConfig::default()
            }),
            Err(err) => Err(err),
        }
    }

    /// `generation_config.json`'s text: what `from_dir` parses once the file is read.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|err| Error::ModelInvalid(err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, json: &str) {
        std::fs::write(dir.join("generation_config.json"), json).unwrap();
    }

    fn config() -> Config {
        Config::from_json(r#"{"model_type":"gpt2","n_embd":8,"n_head":2,"n_layer":1,"vocab_size":100,"n_positions":16,"bos_token_id":7,"eos_token_id":9}"#)
            .unwrap()
    }

    #[test]
    fn reads_the_file_with_one_or_many_eos_ids() {
        let dir = std::env::temp_dir().join(format!("nexttoken-genconfig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write(
            &dir,
            r#"{"max_new_tokens":5,"do_sample":true,"top_k":3,"eos_token_id":[1,2],"bos_token_id":4,"transformers_version":"5.24.0"}"#,
        );
        let read = GenerationConfig::from_dir(&dir, &config()).unwrap();
        assert_eq!((read.max_new_tokens, read.do_sample, read.top_k), (Some(5), Some(true), Some(3)));
        assert_eq!((read.eos_token_ids, read.bos_token_id), (vec![1, 2], Some(4)));
        write(
            &dir,
            r#"{"eos_token_id":9,"bad_words_ids":null,"suppress_tokens":[3],"sequence_bias":{"(1, 2)":-1.5,"(4,)":2.0},"stop_strings":"END","forced_eos_token_id":9}"#,
        );
        let read = GenerationConfig::from_dir(&dir, &config()).unwrap();
        assert_eq!((read.bad_words_ids.len(), read.suppress_tokens), (0, vec![3]));
        assert_eq!(read.sequence_bias, vec![(vec![1, 2], -1.5), (vec![4], 2.0)]);
        assert_eq!((read.stop_strings, read.forced_eos_token_ids), (vec!["END".to_string()], vec![9]));
        write(&dir, r#"{"sequence_bias":[[[1, 2], -1.5]]}"#);
        assert_eq!(
            GenerationConfig::from_dir(&dir, &config()).unwrap().sequence_bias,
            vec![(vec![1, 2], -1.5)]
        );
        write(&dir, r#"{"eos_token_id":9}"#);
        assert_eq!(GenerationConfig::from_dir(&dir, &config()).unwrap().eos_token_ids, vec![9]);
        write(&dir, r#"{"eos_token_id":"nine"}"#);
        assert_eq!(GenerationConfig::from_dir(&dir, &config()).unwrap_err().code(), "ERR_MODEL_INVALID");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_the_file_the_model_config_gives_the_special_tokens() {
        let dir = std::env::temp_dir().join(format!("nexttoken-genconfig-none-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let read = GenerationConfig::from_dir(&dir, &config()).unwrap();
        assert_eq!(
            read,
            GenerationConfig { eos_token_ids: vec![9], bos_token_id: Some(7), ..Default::default() }
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
