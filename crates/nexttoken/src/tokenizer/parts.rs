//! A GPT-2 tokenizer's parts (`Parts`): the vocabulary, the merges, the added tokens and whether
//! a space goes before the text, as every file that holds one (`tokenizer.json`, `vocab.json` with
//! `merges.txt`, a GGUF file's metadata) is read into them (`crate::load`), and the checks that
//! make them safe to build a BPE from.

use std::collections::HashMap;

use serde::Deserialize;

/// A GPT-2 tokenizer's parts, as its files hold them: what `Tokenizer::from_parts` checks (`check`)
/// and builds from.
pub struct Parts {
    /// Token to id; the ids are exactly 0..len.
    pub vocab: HashMap<String, u32>,
    /// In rank order; each pair and its concatenation are tokens of `vocab`.
    pub merges: Vec<(String, String)>,
    /// In id order: each either a token of `vocab` with its id, or the next id after it.
    pub added: Vec<Added>,
    /// A space is put before the text (the pre-tokenizer's `add_prefix_space`).
    pub add_prefix_space: bool,
    /// Given to what the merges cannot cover; a token of `vocab`.
    pub unk_token: Option<String>,
}

/// A token matched whole in the text before BPE (`<|endoftext|>`), as tokenizers adds it.
#[derive(Deserialize, Clone, Debug)]
pub struct Added {
    pub id: u32,
    pub content: String,
    #[serde(default)]
    pub special: bool,
    #[serde(default)]
    pub single_word: bool,
    #[serde(default)]
    pub lstrip: bool,
    #[serde(default)]
    pub rstrip: bool,
    /// Matched in the normalized text; by default, when not special.
    pub normalized: Option<bool>,
}

impl Added {
    /// The special token `content` (`<|endoftext|>`) at `id`, with tokenizers' defaults.
    pub fn special(id: u32, content: &str) -> Self {
        Added {
            id,
            content: content.into(),
            special: true,
            single_word: false,
            lstrip: false,
            rstrip: false,
            normalized: None,
        }
    }
}

/// Checks what building a BPE from `parts` takes for granted (tokenizers panics on some merges
/// it does not check), and that its ids are those of one vocabulary without gaps.
pub fn check(parts: &Parts) -> Result<(), String> {
    let size = parts.vocab.len();
    if size == 0 {
        return Err("the vocabulary is empty".into());
    }
    let mut seen = vec![false; size];
    for (token, &id) in &parts.vocab {
        match seen.get_mut(id as usize) {
            Some(seen @ false) => *seen = true,
            Some(true) => return Err(format!("id {id} is given to two tokens")),
            None => {
                return Err(format!(
                    "token '{token}' has id {id}; the {size} tokens' ids must be 0 to {}",
                    size - 1
                ))
            }
        }
    }
    for (rank, (a, b)) in parts.merges.iter().enumerate() {
        let merged = format!("{a}{b}");
        let missing = [a, b, &merged].into_iter().find(|token| !parts.vocab.contains_key(token.as_str()));
        if let Some(token) = missing {
            return Err(format!("merge {rank} ('{a} {b}') needs '{token}', which the vocabulary lacks"));
        }
    }
    if let Some(unk) = &parts.unk_token {
        if !parts.vocab.contains_key(unk) {
            return Err(format!("unk_token '{unk}' is not in the vocabulary"));
        }
    }
    let mut next = size as u64;
    let mut contents = std::collections::HashSet::new();
    for token in &parts.added {
        if token.content.is_empty() || !contents.insert(token.content.as_str()) {
            return Err(format!("added token {} is empty or added twice", token.id));
        }
        match parts.vocab.get(&token.content) {
            Some(&id) if id == token.id => {}
            None if u64::from(token.id) == next => next += 1,
            _ => {
                return Err(format!(
                    "added token '{}' has id {}; it must be its id in the vocabulary, or the next after it ({next})",
                    token.content, token.id
                ))
            }
        }
    }
    Ok(())
}
