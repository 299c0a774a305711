//! A GPT-2 tokenizer from a model directory's files: `tokenizer.json` or, when a repo has only
//! the original OpenAI files, `vocab.json` + `merges.txt`, each read into the tokenizer's parts
//! (`crate::tokenizer::Parts`). `tokenizer.json` may describe any tokenizers
//! pipeline, and some of its parts run code of their own on every text (a `Split` pre-tokenizer's
//! regex made Oniguruma panic on one sentence, which took the process down). Only GPT-2's
//! byte-level BPE is accepted: no normalizer, the ByteLevel pre-tokenizer with its own regex, a
//! ByteLevel decoder, and a post-processor that adds no tokens; anything else is refused, naming
//! it, rather than rebuilt into a tokenizer that gives other ids. `truncation` and `padding` are
//! not read (transformers does not apply them when it encodes a prompt either).

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::gguf_tokenizer;
use super::resolve::{resolve, ModelSource};
use crate::error::{Error, Result};
use crate::files;
use crate::gguf::GgufFile;
use crate::tokenizer::{Added, Parts, Tokenizer, END_OF_TEXT};

impl Tokenizer {
    /// The tokenizer of a model directory or GGUF file, as `resolve` finds it (a GGUF file's
    /// metadata only: no tensor is read).
    pub fn from_pretrained(name_or_path: &str) -> Result<Self> {
        match resolve(name_or_path)? {
            ModelSource::Dir(dir) => Self::from_dir(&dir),
            ModelSource::Gguf(path) => gguf_tokenizer::tokenizer(&GgufFile::open(&path)?),
        }
    }

    /// Loads the tokenizer of the model directory `dir`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        // A tokenizer.json that is there but unreadable (a directory, a FIFO, a symlink loop) is
        // refused as such, not silently replaced by vocab.json + merges.txt.
        let json = dir.join("tokenizer.json");
        if files::present(&json) {
            return Self::from_tokenizer_json(&json);
        }
        let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
        if files::present(&vocab) && files::present(&merges) {
            return Self::from_vocab_and_merges(&vocab, &merges);
        }
        Err(Error::ModelNotFound(format!(
            "no tokenizer in {}: looked for tokenizer.json, or vocab.json with merges.txt",
            dir.display()
        )))
    }

    /// The tokenizer of the file `path`, a `tokenizer.json` that describes GPT-2's byte-level BPE.
    pub fn from_tokenizer_json(path: &Path) -> Result<Self> {
        Self::from_tokenizer_json_bytes(path, &files::read(path, "tokenizer.json")?)
    }

    /// `from_tokenizer_json` for the file's `bytes` (`path` names it in messages): what the
    /// tokenizer files' fuzz target feeds.
    pub fn from_tokenizer_json_bytes(path: &Path, bytes: &[u8]) -> Result<Self> {
        tokenizer_json_parts(bytes).and_then(Self::from_parts).map_err(|err| Error::invalid_file(path, err))
    }

    /// Builds what `GPT2TokenizerFast` builds from the OpenAI files: byte-level BPE without a
    /// prefix space, byte-level decoding, and `<|endoftext|>` as a special token.
    pub fn from_vocab_and_merges(vocab: &Path, merges: &Path) -> Result<Self> {
        let vocab_bytes = files::read(vocab, "vocab.json")?;
        let merges_text = files::read_text(merges, "merges.txt")?;
        Self::from_vocab_and_merges_bytes(vocab, &vocab_bytes, &merges_text)
    }

    /// `from_vocab_and_merges` for the files' contents (`vocab` names them in messages).
    pub fn from_vocab_and_merges_bytes(vocab: &Path, vocab_bytes: &[u8], merges: &str) -> Result<Self> {
        let invalid = |err| {
            Error::invalid_file(vocab, format!("cannot build BPE from vocab.json and merges.txt ({err})"))
        };
        vocab_and_merges_parts(vocab_bytes, merges).and_then(Self::from_parts).map_err(invalid)
    }
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
fn tokenizer_json_parts(bytes: &[u8]) -> std::result::Result<Parts, String> {
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
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut added = json.added_tokens;
    added.sort_by_key(|token| token.id);
    Ok(Parts { vocab: model.vocab, merges, added, add_prefix_space, unk_token: model.unk_token })
}

/// The parts of the tokenizer OpenAI's files describe, as `GPT2TokenizerFast` builds it: no
/// prefix space, and `<|endoftext|>` special if it is in the vocabulary.
fn vocab_and_merges_parts(vocab: &[u8], merges: &str) -> std::result::Result<Parts, String> {
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
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let added = vocab.get(END_OF_TEXT).map(|&id| Added::special(id, END_OF_TEXT)).into_iter().collect();
    Ok(Parts { vocab, merges, added, add_prefix_space: false, unk_token: None })
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
