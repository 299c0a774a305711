//! What a model name or path names: a directory in the Hugging Face layout, or a GGUF file (by
//! its path, or as the only `.gguf` file of a directory without Hugging Face weights).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::gguf::is_gguf_name;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// config.json, weights and tokenizer files.
    Dir(PathBuf),
    /// One GGUF file, which holds the config and the tokenizer too.
    Gguf(PathBuf),
}

/// Checkpoint files of the Hugging Face layout: any of them makes a directory one of that layout.
const HF_WEIGHTS: [&str; 3] = ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"];

/// The model `name_or_path` names. Hub repo ids are resolved to a cache directory before they
/// get here (by the JS API, which fetches them).
pub fn resolve(name_or_path: &str) -> Result<ModelSource> {
    if name_or_path.is_empty() {
        return Err(Error::InvalidArg("model name or path is empty".into()));
    }
    let path = Path::new(name_or_path);
    if path.is_dir() {
        return in_dir(path);
    }
    let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    if path.exists() {
        if is_gguf_name(path) {
            return Ok(ModelSource::Gguf(path.to_path_buf()));
        }
        return Err(Error::ModelNotFound(format!(
            "{} is a file; expected a model directory (config.json, model.safetensors, tokenizer.json) or a .gguf file",
            shown.display()
        )));
    }
    Err(Error::ModelNotFound(format!(
        "no model directory at {}: pass a Hub repo id such as 'gpt2', the path of a directory \
         holding config.json, model.safetensors and tokenizer.json, or the path of a .gguf file",
        shown.display()
    )))
}

/// A directory's model. Hugging Face weights win over GGUF files, as in transformers (which
/// reads a GGUF file only when named with `gguf_file=`); without them, the directory's one
/// `.gguf` file, and several are ambiguous (the caller names one by its path).
fn in_dir(dir: &Path) -> Result<ModelSource> {
    if HF_WEIGHTS.iter().any(|name| dir.join(name).exists()) {
        return Ok(ModelSource::Dir(dir.to_path_buf()));
    }
    let entries = std::fs::read_dir(dir).map_err(|err| Error::invalid_file(dir, err))?;
    let mut ggufs: Vec<PathBuf> =
        entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| is_gguf_name(p)).collect();
    ggufs.sort();
    match ggufs.len() {
        // The Hugging Face loader reports what is missing.
        0 => Ok(ModelSource::Dir(dir.to_path_buf())),
        1 => Ok(ModelSource::Gguf(ggufs.remove(0))),
        _ => {
            let names: Vec<String> = ggufs
                .iter()
                .filter_map(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .collect();
            Err(Error::InvalidArg(format!(
                "{} holds {} GGUF files ({}): pass the path of the one to load",
                dir.display(),
                names.len(),
                names.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_prefers_hugging_face_weights_and_takes_one_gguf_file() {
        let dir = std::env::temp_dir().join(format!("nexttoken-source-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let shown = dir.to_str().unwrap();
        assert_eq!(resolve(shown).unwrap(), ModelSource::Dir(dir.clone()));
        std::fs::write(dir.join("a.GGUF"), b"").unwrap();
        assert_eq!(resolve(shown).unwrap(), ModelSource::Gguf(dir.join("a.GGUF")));
        std::fs::write(dir.join("b.gguf"), b"").unwrap();
        let err = resolve(shown).unwrap_err();
        assert_eq!(err.code(), "ERR_INVALID_ARG");
        assert!(err.to_string().contains("a.GGUF, b.gguf"), "{err}");
        std::fs::write(dir.join("model.safetensors"), b"").unwrap();
        assert_eq!(resolve(shown).unwrap(), ModelSource::Dir(dir.clone()));
        let file = dir.join("b.gguf");
        assert_eq!(resolve(file.to_str().unwrap()).unwrap(), ModelSource::Gguf(file));
        let not_gguf = resolve(dir.join("model.safetensors").to_str().unwrap()).unwrap_err();
        assert_eq!(not_gguf.code(), "ERR_MODEL_NOT_FOUND");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
