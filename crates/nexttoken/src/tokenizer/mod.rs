//! GPT-2's byte-level BPE, always built from its vocabulary, merges and added tokens (`Parts`,
//! which `crate::load` reads from `tokenizer.json`, `vocab.json` + `merges.txt` or a GGUF file),
//! with GPT-2's own pipeline around them, so that no file can bring a pre-tokenizer, normalizer
//! or regex of its own. Encoding and decoding catch panics: a bug in the tokenizers crate or its
//! regex engine is an `ERR_INTERNAL` error, not an abort.

mod parts;

use std::panic::{catch_unwind, AssertUnwindSafe};

use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::AddedToken;

use crate::error::{Error, Result};
pub(crate) use parts::{Added, Parts};

/// GPT-2's only special token: end of text, also used as padding.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// GPT-2's tokenizer. Its constructors from a model's files (`from_pretrained`, `from_dir`,
/// `from_tokenizer_json`, `from_vocab_and_merges`) are `crate::load`'s (`tokenizer_files.rs`).
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl Tokenizer {
    /// GPT-2's pipeline around the BPE of `parts`, once checked (`parts::check`): byte-level
    /// pre-tokenizing with GPT-2's regex, decoding and post-processing, and the added tokens
    /// matched whole before BPE, each at the id its file gave it.
    pub(crate) fn from_parts(parts: Parts) -> std::result::Result<Self, String> {
        parts::check(&parts)?;
        let mut builder = BPE::builder().vocab_and_merges(
            parts.vocab.into_iter().collect::<tokenizers::models::bpe::Vocab>(),
            parts.merges,
        );
        if let Some(unk) = parts.unk_token {
            builder = builder.unk_token(unk);
        }
        let bpe =
            builder.build().map_err(|err| format!("cannot build BPE from its tokens and merges ({err})"))?;
        let mut inner = tokenizers::Tokenizer::new(bpe);
        let byte_level = ByteLevel::new(parts.add_prefix_space, true, true);
        inner
            .with_pre_tokenizer(Some(byte_level))
            .with_decoder(Some(byte_level))
            .with_post_processor(Some(byte_level));
        for added in parts.added {
            let normalized = added.normalized.unwrap_or(!added.special);
            let token = AddedToken::from(added.content.clone(), added.special)
                .single_word(added.single_word)
                .lstrip(added.lstrip)
                .rstrip(added.rstrip)
                .normalized(normalized);
            match added.special {
                true => inner.add_special_tokens([token]),
                false => inner.add_tokens([token]),
            }
            .map_err(|err| err.to_string())?;
            if inner.token_to_id(&added.content) != Some(added.id) {
                return Err(format!("added token '{}' does not get its id {}", added.content, added.id));
            }
        }
        Ok(Tokenizer { inner })
    }

    /// Token ids of `text`, as `tokenizer(text)["input_ids"]` in transformers.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = caught("encoding a text", || self.inner.encode_fast(text, true))?
            .map_err(|err| Error::InvalidArg(format!("cannot encode text: {err}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Text of `ids`, special tokens kept, as `tokenizer.decode(ids)` in transformers.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.check_ids(ids)?;
        caught("decoding ids", || self.inner.decode(ids, false))?
            .map_err(|err| Error::InvalidArg(format!("cannot decode ids: {err}")))
    }

    /// The vocabulary entry of `id` (byte-level form, e.g. `Ġthe`), as `convert_ids_to_tokens`.
    pub fn id_to_token(&self, id: u32) -> Result<String> {
        self.check_ids(&[id])?;
        Ok(self.inner.id_to_token(id).unwrap_or_default())
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Number of ids, special tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    fn check_ids(&self, ids: &[u32]) -> Result<()> {
        let vocab_size = self.vocab_size();
        match ids.iter().find(|&&id| id as usize >= vocab_size) {
            Some(&id) => Err(Error::TokenOutOfRange { id, vocab_size }),
            None => Ok(()),
        }
    }
}

/// `work`'s result, or the panic it ended in as an `ERR_INTERNAL` error: the tokenizers crate and
/// its regex engine (Oniguruma, through the onig crate) panic on some failures, and a panic that
/// reaches a JavaScript thread aborts Node.
fn caught<T>(what: &str, work: impl FnOnce() -> T) -> Result<T> {
    catch_unwind(AssertUnwindSafe(work)).map_err(|panic| {
        Error::Internal(format!(
            "the tokenizer failed {what}: {}",
            crate::error::panic_message(panic.as_ref())
        ))
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use serde_json::{json, Value};

    fn fixture_json() -> Value {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures/tiny-gpt2");
        serde_json::from_slice(&std::fs::read(dir.join("tokenizer.json")).unwrap()).unwrap()
    }

    /// Issue 33's case: a Split pre-tokenizer whose regex makes Oniguruma give up on this
    /// sentence (its retry limit), which the onig crate answers with a panic.
    fn with_split_regex() -> Value {
        let mut json = fixture_json();
        json["pre_tokenizer"] = json!({
            "type": "Split", "pattern": { "Regex": "(\\w+\\s?)+\\W\\z" },
            "behavior": "Isolated", "invert": false
        });
        json
    }

    const SENTENCE: &str = "The quick brown fox jumps over the lazy dog";

    #[test]
    fn only_gpt2s_byte_level_pipeline_is_accepted() {
        let refused = |edit: &dyn Fn(&mut Value), expected: &str| {
            let mut json = fixture_json();
            edit(&mut json);
            let bytes = serde_json::to_vec(&json).unwrap();
            let err =
                Tokenizer::from_tokenizer_json_bytes(Path::new("tokenizer.json"), &bytes).err().unwrap();
            assert_eq!(err.code(), "ERR_MODEL_INVALID", "{err}");
            assert!(err.to_string().starts_with("tokenizer.json: "), "{err}");
            assert!(err.to_string().contains(expected), "{expected}: {err}");
        };
        let split = with_split_regex()["pre_tokenizer"].clone();
        refused(&|j| j["pre_tokenizer"] = split.clone(), "its pre_tokenizer is 'Split'");
        refused(
            &|j| j["pre_tokenizer"]["use_regex"] = json!(false),
            "pre_tokenizer is ByteLevel with options",
        );
        refused(
            &|j| j["pre_tokenizer"] = json!({"type": "Sequence", "pretokenizers": [split.clone()]}),
            "'Sequence'",
        );
        refused(&|j| j["pre_tokenizer"] = Value::Null, "its pre_tokenizer is missing");
        refused(&|j| j["normalizer"] = json!({"type": "NFKC"}), "its normalizer is 'NFKC'");
        let replace = json!({"type": "Replace", "pattern": {"Regex": "(a+)+$"}, "content": ""});
        refused(&|j| j["normalizer"] = replace.clone(), "its normalizer is 'Replace'");
        refused(&|j| j["decoder"] = replace.clone(), "its decoder is 'Replace'");
        refused(
            &|j| {
                j["post_processor"]["single"] = json!([
                    {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}}
                ])
            },
            "a TemplateProcessing that adds tokens",
        );
        refused(&|j| j["model"]["type"] = json!("WordPiece"), "its model is not BPE");
        refused(&|j| j["model"]["dropout"] = json!(0.1), "its BPE has dropout");
        refused(&|j| j["model"]["byte_fallback"] = json!(true), "byte_fallback");
        refused(&|j| j["model"]["vocab"]["!"] = json!(70000), "token '!' has id 70000");
        refused(&|j| j["model"]["vocab"]["!"] = json!(1), "id 1 is given to two tokens");
        refused(&|j| j["model"]["merges"][0] = json!(["\u{120}", "zzz"]), "needs 'zzz'");
        // Tokens the vocabulary has but not their merge: tokenizers' own builder panics on this
        // (it copies the pair into a buffer as long as the longest token).
        refused(
            &|j| j["model"]["merges"][0] = json!(["\u{120}the", "\u{120}the"]),
            "needs '\u{120}the\u{120}the'",
        );
        refused(&|j| j["model"]["merges"][0] = json!("a b c"), "is not two tokens and a space");
        refused(&|j| j["added_tokens"][0]["id"] = json!(7), "added token '<|endoftext|>' has id 7");
        refused(&|j| j["added_tokens"][0]["id"] = json!(50258), "the next after it (50257)");
    }

    #[test]
    fn tokenizer_json_is_rebuilt_with_its_options_and_added_tokens() {
        let ids = |json: &Value, text: &str| {
            let bytes = serde_json::to_vec(json).unwrap();
            Tokenizer::from_tokenizer_json_bytes(Path::new("tokenizer.json"), &bytes)
                .unwrap()
                .encode(text)
                .unwrap()
        };
        let plain = fixture_json();
        assert_eq!(ids(&plain, "Hello world<|endoftext|>"), [15496, 995, 50256]);
        // add_prefix_space: "Hello" as " Hello"; older files' "a b" merges; an added token
        // after the vocabulary.
        let mut other = plain.clone();
        other["pre_tokenizer"]["add_prefix_space"] = json!(true);
        other["post_processor"] =
            json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true});
        let merges: Vec<Value> = other["model"]["merges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| json!(format!("{} {}", m[0].as_str().unwrap(), m[1].as_str().unwrap())))
            .collect();
        other["model"]["merges"] = json!(merges);
        other["added_tokens"].as_array_mut().unwrap().push(json!({
            "id": 50257, "content": "<pad>", "single_word": false, "lstrip": false, "rstrip": false,
            "normalized": false, "special": true
        }));
        assert_eq!(ids(&other, "Hello world<pad>"), [18435, 995, 50257]);
    }

    #[test]
    fn a_panic_in_the_tokenizer_is_an_error_not_an_abort() {
        // Built by tokenizers itself, as nexttoken built every tokenizer.json before: the Split
        // regex runs on every text.
        let inner: tokenizers::Tokenizer = with_split_regex().to_string().parse().unwrap();
        let tokenizer = Tokenizer { inner };
        match tokenizer.encode(SENTENCE) {
            Err(err) => {
                assert_eq!(err.code(), "ERR_INTERNAL", "{err}");
                assert!(err.to_string().contains("the tokenizer failed encoding a text"), "{err}");
            }
            Ok(ids) => panic!("Oniguruma's retry limit no longer trips on this sentence: {ids:?}"),
        }
        // The same file, loaded as nexttoken loads it: refused before any text is encoded.
        let bytes = with_split_regex().to_string();
        let err = Tokenizer::from_tokenizer_json_bytes(Path::new("tokenizer.json"), bytes.as_bytes())
            .err()
            .unwrap();
        assert_eq!(err.code(), "ERR_MODEL_INVALID");
    }
}
