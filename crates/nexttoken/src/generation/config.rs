//! The model's generation defaults: `generation_config.json` as transformers reads it, falling
//! back to `config.json`'s special tokens when the file is absent (transformers'
//! `GenerationConfig.from_model_config`). A call's own options override these; what neither sets
//! takes transformers' global defaults (the option table, `options/mod.rs`).

use std::path::Path;

use super::options::GenerationConfig;
use crate::config::Config;
use crate::error::{Error, Result};

impl GenerationConfig {
    /// `dir/generation_config.json` if present, else the special tokens of `config`.
    pub fn from_dir(dir: &Path, config: &Config) -> Result<Self> {
        let path = dir.join("generation_config.json");
        match crate::files::read_text(&path, "generation_config.json") {
            Ok(text) => Self::from_json(&text).map_err(|err| Error::invalid_file(&path, err)),
            Err(Error::ModelNotFound(_)) => Ok(Self::from_model_config(config)),
            Err(err) => Err(err),
        }
    }

    /// What a model without `generation_config.json` generates with: its config's special tokens
    /// (transformers' `GenerationConfig.from_model_config`).
    pub fn from_model_config(config: &Config) -> Self {
        GenerationConfig {
            bos_token_id: config.bos_token_id,
            eos_token_id: config.eos_token_id.map(|id| vec![id]),
            ..GenerationConfig::default()
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
        assert_eq!((read.eos_token_id, read.bos_token_id), (Some(vec![1, 2]), Some(4)));
        write(
            &dir,
            r#"{"eos_token_id":9,"bad_words_ids":null,"suppress_tokens":[3],"exponential_decay_length_penalty":[3,1.25],"sequence_bias":{"(1, 2)":-1.5,"(4,)":2.0},"stop_strings":"END","forced_eos_token_id":9}"#,
        );
        let read = GenerationConfig::from_dir(&dir, &config()).unwrap();
        assert_eq!((read.bad_words_ids, read.suppress_tokens), (None, Some(vec![3])));
        assert_eq!(read.sequence_bias, Some(vec![(vec![1, 2], -1.5), (vec![4], 2.0)]));
        assert_eq!(read.exponential_decay_length_penalty, Some((3, 1.25)));
        assert_eq!(
            (read.stop_strings, read.forced_eos_token_id),
            (Some(vec!["END".to_string()]), Some(vec![9]))
        );
        write(&dir, r#"{"sequence_bias":[[[1, 2], -1.5]]}"#);
        assert_eq!(
            GenerationConfig::from_dir(&dir, &config()).unwrap().sequence_bias,
            Some(vec![(vec![1, 2], -1.5)])
        );
        write(&dir, r#"{"eos_token_id":9}"#);
        assert_eq!(GenerationConfig::from_dir(&dir, &config()).unwrap().eos_token_id, Some(vec![9]));
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
            GenerationConfig { eos_token_id: Some(vec![9]), bos_token_id: Some(7), ..Default::default() }
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
