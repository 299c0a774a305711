//! A GPT-2 tokenizer's files read into its parts (`Parts`): the vocabulary, the merges, the added
//! tokens and whether a space goes before the text. `tokenizer.json` may describe any tokenizers
//! pipeline, and some of its parts run code of their own on every text (a `Split` pre-tokenizer's
//! regex made Oniguruma panic on one sentence, which took the process down). Only GPT-2's
//! byte-level BPE is accepted: no normalizer, the ByteLevel pre-tokenizer with its own regex, a
//! ByteLevel decoder, and a post-processor that adds no tokens; anything else is refused, naming
//! it, rather than rebuilt into a tokenizer that gives other ids. `truncation` and `padding` are
//! not read (transformers does not apply them when it encodes a prompt either).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

/// A GPT-2 tokenizer's parts, checked (`check`): what `Tokenizer::from_checked_parts` builds from.
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

#[derive(Deserialize)]
struct TokenizerJson {
    #[serde(default)]
    normalizer: Value,
    #[serde(default)]
    pre_tokenizer: Value,
    #[serde(default)]
    post_processor: Value,
    #[serde(default)]
    decoder: Value,
    model: BpeJson,
    #[serde(default)]
    added_tokens: Vec<Added>,
}

#[derive(Deserialize)]
struct BpeJson {
    #[serde(rename = "type")]
    kind: Option<String>,
    vocab: HashMap<String, u32>,
    merges: Vec<Merge>,
    dropout: Option<f32>,
    unk_token: Option<String>,
    continuing_subword_prefix: Option<String>,
    end_of_word_suffix: Option<String>,
    #[serde(default)]
    byte_fallback: bool,
    #[serde(default)]
    ignore_merges: bool,
}

/// A merge as tokenizers writes it: `"a b"` (older files) or `["a", "b"]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Merge {
    Line(String),
    Pair(String, String),
}

/// The parts of the tokenizer `tokenizer.json` holds, if it is GPT-2's byte-level BPE.
pub fn from_tokenizer_json(bytes: &[u8]) -> Result<Parts, String> {
    let json: TokenizerJson =
        serde_json::from_slice(bytes).map_err(|err| format!("not a valid tokenizer.json ({err})"))?;
    let refused = |part: &str, value: &Value| {
        format!("its {part} is {}; nexttoken reads only GPT-2's byte-level BPE pipeline", describe(value))
    };
    if !json.normalizer.is_null() {
        return Err(refused("normalizer", &json.normalizer));
    }
    let add_prefix_space = match byte_level(&json.pre_tokenizer) {
        Some(add_prefix_space) => add_prefix_space,
        None => return Err(refused("pre_tokenizer", &json.pre_tokenizer)),
    };
    if json.decoder.get("type").and_then(Value::as_str) != Some("ByteLevel") {
        return Err(refused("decoder", &json.decoder));
    }
    if !adds_nothing(&json.post_processor) {
        return Err(refused("post_processor", &json.post_processor));
    }
    let model = json.model;
    let options = [
        (model.kind.as_deref().is_some_and(|kind| kind != "BPE"), "its model is not BPE"),
        (model.dropout.is_some_and(|p| p != 0.0), "its BPE has dropout"),
        (
            model.continuing_subword_prefix.as_deref().is_some_and(|s| !s.is_empty()),
            "its BPE has a continuing_subword_prefix",
        ),
        (
            model.end_of_word_suffix.as_deref().is_some_and(|s| !s.is_empty()),
            "its BPE has an end_of_word_suffix",
        ),
        (model.byte_fallback, "its BPE has byte_fallback"),
        (model.ignore_merges, "its BPE has ignore_merges"),
    ];
    if let Some((_, what)) = options.iter().find(|(set, _)| *set) {
        return Err(format!("{what}: nexttoken reads only GPT-2's byte-level BPE"));
    }
    let merges = model
        .merges
        .into_iter()
        .enumerate()
        .map(|(rank, merge)| match merge {
            Merge::Pair(a, b) => Ok((a, b)),
            Merge::Line(line) => merge_line(&line)
                .ok_or_else(|| format!("merge {rank} ('{line}') is not two tokens and a space")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut added = json.added_tokens;
    added.sort_by_key(|token| token.id);
    let parts = Parts { vocab: model.vocab, merges, added, add_prefix_space, unk_token: model.unk_token };
    check(&parts)?;
    Ok(parts)
}

/// The parts of the tokenizer OpenAI's files describe, as `GPT2TokenizerFast` builds it: no
/// prefix space, and `<|endoftext|>` special if it is in the vocabulary.
pub fn from_vocab_and_merges(vocab: &[u8], merges: &str) -> Result<Parts, String> {
    let vocab: HashMap<String, u32> = serde_json::from_slice(vocab)
        .map_err(|err| format!("vocab.json is not an object of tokens and their ids ({err})"))?;
    let merges = merges
        .lines()
        .filter(|line| !line.starts_with("#version") && !line.is_empty())
        .enumerate()
        .map(|(rank, line)| {
            merge_line(line)
                .ok_or_else(|| format!("merges.txt's merge {rank} ('{line}') is not two tokens and a space"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let end_of_text = super::END_OF_TEXT;
    let added = vocab
        .get(end_of_text)
        .map(|&id| Added {
            id,
            content: end_of_text.into(),
            special: true,
            single_word: false,
            lstrip: false,
            rstrip: false,
            normalized: None,
        })
        .into_iter()
        .collect();
    let parts = Parts { vocab, merges, added, add_prefix_space: false, unk_token: None };
    check(&parts)?;
    Ok(parts)
}

/// `a b` as the pair it names.
fn merge_line(line: &str) -> Option<(String, String)> {
    let (a, b) = line.split_once(' ')?;
    (!b.contains(' ')).then(|| (a.to_string(), b.to_string()))
}

/// `add_prefix_space` of a ByteLevel component that splits with GPT-2's regex; None for anything else.
fn byte_level(value: &Value) -> Option<bool> {
    if value.get("type")?.as_str()? != "ByteLevel" {
        return None;
    }
    let use_regex = value.get("use_regex").map_or(Some(true), Value::as_bool)?;
    let add_prefix_space = value.get("add_prefix_space").map_or(Some(false), Value::as_bool)?;
    use_regex.then_some(add_prefix_space)
}

/// Whether a post-processor adds no tokens to an encoded text: none, ByteLevel (which only trims
/// offsets), or a template whose single text is the text alone (as transformers writes GPT-2's).
fn adds_nothing(value: &Value) -> bool {
    match value.get("type").and_then(Value::as_str) {
        _ if value.is_null() => true,
        Some("ByteLevel") => true,
        Some("TemplateProcessing") => value.get("single").and_then(Value::as_array).is_some_and(|single| {
            single.len() == 1 && single[0].pointer("/Sequence/id") == Some(&Value::from("A"))
        }),
        _ => false,
    }
}

/// A pipeline component, for messages: `'Split'`, or what the value is.
fn describe(value: &Value) -> String {
    match value.get("type").and_then(Value::as_str) {
        Some("ByteLevel") => "ByteLevel with options GPT-2's has not".into(),
        Some("TemplateProcessing") => "a TemplateProcessing that adds tokens".into(),
        Some(kind) => format!("'{}'", kind.chars().take(40).collect::<String>()),
        None if value.is_null() => "missing".into(),
        None => "not a component".into(),
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
