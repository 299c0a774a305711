//! A GGUF file of architecture `gpt2`, as llama.cpp's `convert_hf_to_gguf.py` writes it, mapped
//! to our model: its config from the `gpt2.*` metadata, its tensors under the Hugging Face names
//! and shapes `Network::load` asks for, and its tokenizer (`gguf_tokenizer`).

use std::path::Path;

use candle_core::Device;

use super::gguf_tokenizer;
use super::weights::{GgufTensor, Weights};
use crate::config::{Config, RawConfig};
use crate::error::{Error, Result};
use crate::gguf::{GgufFile, TensorInfo, Value};
use crate::tokenizer::Tokenizer;

/// What a GGUF file holds, mapped to our model.
pub struct GgufModel {
    pub config: Config,
    pub weights: Weights,
    pub tokenizer: Tokenizer,
}

impl GgufModel {
    /// Reads the GGUF file at `path`: its config, tokenizer and (not yet read) tensors.
    pub fn open(path: &Path, device: &Device) -> Result<Self> {
        Self::read(GgufFile::open(path)?, device)
    }

    /// What the GGUF `file` (opened, or read from memory by the fuzz target) holds.
    pub fn read(file: GgufFile, device: &Device) -> Result<Self> {
        let config = config(&file)?;
        let tensors = tensors(&file, &config)?;
        let tokenizer = gguf_tokenizer::tokenizer(&file)?;
        let weights = Weights::from_gguf(file.path, file.file, tensors, device);
        Ok(GgufModel { config, weights, tokenizer })
    }
}

/// The config in the metadata. The vocabulary size is the token embeddings' row count (it may
/// exceed the tokenizer's, as a padded Hugging Face checkpoint's may).
fn config(g: &GgufFile) -> Result<Config> {
    let invalid = |msg: String| Error::invalid_file(&g.path, msg);
    match g.get("general.architecture").and_then(Value::as_str) {
        Some("gpt2") => {}
        Some(other) => {
            return Err(invalid(format!(
                "general.architecture is '{other}', but nexttoken runs only 'gpt2' models"
            )))
        }
        None => return Err(invalid("general.architecture is missing (expected 'gpt2')".into())),
    }
    let count = |key: &str| -> Result<Option<usize>> {
        match g.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|v| usize::try_from(v).ok())
                .map(Some)
                .ok_or_else(|| invalid(format!("{key} is {}, not a count", v.kind()))),
        }
    };
    let required = |key: &str| count(key)?.ok_or_else(|| invalid(format!("metadata '{key}' is missing")));
    let eps = match g.get("gpt2.attention.layer_norm_epsilon") {
        None => return Err(invalid("metadata 'gpt2.attention.layer_norm_epsilon' is missing".into())),
        // Stored as f32: read back through its shortest decimal form, 1e-5 is config.json's 1e-5
        // exactly (not 9.99999974e-6), so both files give the same layer norms.
        Some(Value::F32(v)) => v.to_string().parse().unwrap_or(*v as f64),
        Some(v) => {
            v.as_f64().ok_or_else(|| invalid(format!("gpt2.attention.layer_norm_epsilon is {}", v.kind())))?
        }
    };
    let token_embd = find(g, "token_embd.weight")?;
    let (vocab_size, width) = match token_embd.shape()[..] {
        [rows, cols] => (rows, cols),
        _ => {
            return Err(invalid(format!(
                "tensor 'token_embd.weight' has shape {:?}; expected 2 dimensions",
                token_embd.shape()
            )))
        }
    };
    let token_id = |key: &str| -> Result<Option<u32>> {
        count(key)?.map(|id| u32::try_from(id).map_err(|_| invalid(format!("{key} is {id}")))).transpose()
    };
    // The sizes the tensor names and shapes are computed from must be the file's: checked here,
    // before `mappings` lists 12 tensors per layer and multiplies the width.
    let n_embd = required("gpt2.embedding_length")?;
    if n_embd != width {
        return Err(invalid(format!(
            "gpt2.embedding_length is {n_embd} but token_embd.weight has rows of {width}"
        )));
    }
    let n_layer = required("gpt2.block_count")?;
    if n_layer > g.tensors.len() / 12 {
        return Err(invalid(format!(
            "gpt2.block_count is {n_layer} but the file has only {} tensors (12 per block)",
            g.tensors.len()
        )));
    }
    let raw = RawConfig {
        model_type: Some("gpt2".into()),
        n_layer,
        n_head: required("gpt2.attention.head_count")?,
        n_embd,
        n_positions: required("gpt2.context_length")?,
        vocab_size,
        layer_norm_epsilon: eps,
        activation_function: "gelu_new".into(),
        n_inner: count("gpt2.feed_forward_length")?,
        bos_token_id: token_id("tokenizer.ggml.bos_token_id")?,
        eos_token_id: token_id("tokenizer.ggml.eos_token_id")?,
    };
    Config::from_raw(raw).map_err(|err| match err {
        Error::ModelInvalid(msg) => invalid(msg),
        other => other,
    })
}

/// How a Hugging Face tensor is stored in the file.
struct Mapping {
    gguf: String,
    hf: String,
    /// Numpy-order shape in the file.
    shape: Vec<usize>,
    /// A Conv1D weight: ggml keeps llama.cpp's (out, in) rows, Hugging Face (in, out).
    transposed: bool,
}

fn mappings(cfg: &Config) -> Vec<Mapping> {
    let (e, f) = (cfg.n_embd, cfg.n_inner);
    let m = |gguf: String, hf: String, shape: &[usize], transposed| Mapping {
        gguf,
        hf,
        shape: shape.to_vec(),
        transposed,
    };
    let mut all = vec![
        m("token_embd.weight".into(), "wte.weight".into(), &[cfg.vocab_size, e], false),
        m("position_embd.weight".into(), "wpe.weight".into(), &[cfg.n_positions, e], false),
        m("output_norm.weight".into(), "ln_f.weight".into(), &[e], false),
        m("output_norm.bias".into(), "ln_f.bias".into(), &[e], false),
    ];
    for i in 0..cfg.n_layer {
        let (b, h) = (format!("blk.{i}."), format!("h.{i}."));
        let parts: [(&str, &str, Vec<usize>, bool); 12] = [
            ("attn_norm.weight", "ln_1.weight", vec![e], false),
            ("attn_norm.bias", "ln_1.bias", vec![e], false),
            ("attn_qkv.weight", "attn.c_attn.weight", vec![3 * e, e], true),
            ("attn_qkv.bias", "attn.c_attn.bias", vec![3 * e], false),
            ("attn_output.weight", "attn.c_proj.weight", vec![e, e], true),
            ("attn_output.bias", "attn.c_proj.bias", vec![e], false),
            ("ffn_norm.weight", "ln_2.weight", vec![e], false),
            ("ffn_norm.bias", "ln_2.bias", vec![e], false),
            ("ffn_up.weight", "mlp.c_fc.weight", vec![f, e], true),
            ("ffn_up.bias", "mlp.c_fc.bias", vec![f], false),
            ("ffn_down.weight", "mlp.c_proj.weight", vec![e, f], true),
            ("ffn_down.bias", "mlp.c_proj.bias", vec![e], false),
        ];
        for (gguf, hf, shape, transposed) in parts {
            all.push(m(format!("{b}{gguf}"), format!("{h}{hf}"), &shape, transposed));
        }
    }
    all
}

/// The model's tensors, checked: each one there with the shape `cfg` implies, no tensor the
/// model does not use, and `output.weight`, when present, the same as `token_embd.weight`
/// (GPT-2 ties its head to the embeddings and we hold one copy: a different head would be
/// silently ignored, so it is refused).
fn tensors(g: &GgufFile, cfg: &Config) -> Result<Vec<GgufTensor>> {
    let mut out = Vec::new();
    let mut used = std::collections::HashSet::new();
    for m in mappings(cfg) {
        let info = find(g, &m.gguf)?;
        if info.shape() != m.shape {
            return Err(Error::invalid_file(
                &g.path,
                format!(
                    "tensor '{}' has shape {:?}; the metadata implies {:?}",
                    m.gguf,
                    info.shape(),
                    m.shape
                ),
            ));
        }
        used.insert(m.gguf.clone());
        let shape = if m.transposed { m.shape.iter().rev().copied().collect() } else { m.shape };
        out.push(GgufTensor {
            name: m.hf,
            file_name: m.gguf,
            shape,
            info: info.clone(),
            transposed: m.transposed,
        });
    }
    if let Ok(output) = find(g, "output.weight") {
        check_tied(g, output, find(g, "token_embd.weight")?)?;
        used.insert(output.name.clone());
    }
    if let Some(extra) = g.tensors.iter().find(|t| !used.contains(&t.name)) {
        return Err(Error::invalid_file(
            &g.path,
            format!("tensor '{}' is not part of a GPT-2 of this config", extra.name),
        ));
    }
    Ok(out)
}

fn find<'a>(g: &'a GgufFile, name: &str) -> Result<&'a TensorInfo> {
    g.tensors
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| Error::invalid_file(&g.path, format!("tensor '{name}' is missing")))
}

/// Bytes compared at once when checking that the head is tied.
const COMPARE_CHUNK: u64 = 4 << 20;

/// Fails unless `output` holds exactly `token_embd`'s bytes (same type and shape).
fn check_tied(g: &GgufFile, output: &TensorInfo, token_embd: &TensorInfo) -> Result<()> {
    let untied = || {
        Error::invalid_file(
            &g.path,
            "tensor 'output.weight' differs from 'token_embd.weight': GPT-2's output head is tied to its token embeddings, and an untied head is not supported",
        )
    };
    if output.dims != token_embd.dims || output.ggml != token_embd.ggml {
        return Err(untied());
    }
    let size = token_embd.ggml.bytes_of(token_embd.len()).unwrap_or(0);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut at = 0;
    while at < size {
        let len = COMPARE_CHUNK.min(size - at) as usize;
        a.resize(len, 0);
        b.resize(len, 0);
        read(g, &g.path, output.start + at, &mut a)?;
        read(g, &g.path, token_embd.start + at, &mut b)?;
        if a != b {
            return Err(untied());
        }
        at += len as u64;
    }
    Ok(())
}

fn read(g: &GgufFile, path: &Path, offset: u64, buf: &mut [u8]) -> Result<()> {
    g.file.read_at(offset, buf).map_err(|err| Error::invalid_file(path, err))
}
