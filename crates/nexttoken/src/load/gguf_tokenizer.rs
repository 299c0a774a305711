//! GPT-2's tokenizer from a GGUF file's `tokenizer.ggml.*` metadata: the same byte-level BPE as
//! its `tokenizer.json` (the tokens are vocab.json's entries in id order, the merges
//! merges.txt's lines, `<|endoftext|>` a control token).

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gguf::{GgufFile, Value};
use crate::tokenizer::{Added, Parts, Tokenizer, END_OF_TEXT};

/// llama.cpp's token type for control tokens (`LLAMA_TOKEN_TYPE_CONTROL`): the special tokens.
const CONTROL: i64 = 3;

/// The tokenizer in the metadata of the GGUF file `g` (no tensor is read).
pub fn tokenizer(g: &GgufFile) -> Result<Tokenizer> {
    let invalid = |msg: String| Error::invalid_file(&g.path, msg);
    match g.get("tokenizer.ggml.model").and_then(Value::as_str) {
        Some("gpt2") => {}
        Some(other) => {
            return Err(invalid(format!(
                "tokenizer.ggml.model is '{other}'; nexttoken reads GPT-2's byte-level BPE ('gpt2')"
            )))
        }
        None => return Err(invalid("tokenizer.ggml.model is missing (expected 'gpt2')".into())),
    }
    // The pre-tokenizer's split pattern: GPT-2's own, or unnamed (older writers). Another one
    // (llama3, qwen2, ...) splits text differently, which would give other ids silently.
    match g.get("tokenizer.ggml.pre").map(|v| v.as_str()) {
        None | Some(Some("gpt-2")) | Some(Some("default")) => {}
        Some(Some(other)) => {
            return Err(invalid(format!(
                "tokenizer.ggml.pre is '{other}'; nexttoken splits text as GPT-2 does ('gpt-2')"
            )))
        }
        Some(None) => return Err(invalid("tokenizer.ggml.pre is not a string".into())),
    }
    let strings = |key: &str| {
        g.get(key)
            .ok_or_else(|| invalid(format!("metadata '{key}' is missing")))?
            .as_strings()
            .ok_or_else(|| invalid(format!("metadata '{key}' is not an array of strings")))
    };
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merges = strings("tokenizer.ggml.merges")?
        .iter()
        .map(|m| match m.split_once(' ') {
            Some((a, b)) => Ok((a.to_string(), b.to_string())),
            None => Err(invalid(format!("tokenizer.ggml.merges holds '{m}', not two tokens and a space"))),
        })
        .collect::<Result<Vec<_>>>()?;
    let specials: Vec<&str> = match g.get("tokenizer.ggml.token_type") {
        None => vec![END_OF_TEXT],
        Some(types) => {
            let types = types
                .as_ints()
                .filter(|t| t.len() == tokens.len())
                .ok_or_else(|| invalid("tokenizer.ggml.token_type is not one integer per token".into()))?;
            tokens.iter().zip(types).filter(|(_, &t)| t == CONTROL).map(|(s, _)| s.as_str()).collect()
        }
    };
    parts(tokens, merges, &specials).and_then(Tokenizer::from_parts).map_err(invalid)
}

/// The parts of a tokenizer given as its tokens in id order, its merges in rank order, and the
/// tokens that are special (`<|endoftext|>`).
fn parts(
    tokens: &[String],
    merges: Vec<(String, String)>,
    specials: &[&str],
) -> std::result::Result<Parts, String> {
    let vocab: HashMap<String, u32> =
        tokens.iter().enumerate().map(|(id, token)| (token.clone(), id as u32)).collect();
    if vocab.len() != tokens.len() {
        return Err("a token appears twice in the vocabulary".into());
    }
    let mut added: Vec<Added> =
        specials.iter().filter_map(|s| Some(Added::special(*vocab.get(*s)?, s))).collect();
    added.sort_by_key(|token| token.id);
    added.dedup_by(|a, b| a.content == b.content);
    Ok(Parts { vocab, merges, added, add_prefix_space: false, unk_token: None })
}
