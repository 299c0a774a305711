//! GPT-2's byte-level BPE, from `tokenizer.json` or, when a repo has only the original OpenAI
//! files, from `vocab.json` + `merges.txt`.

use std::path::Path;

use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::AddedToken;

use crate::error::{Error, Result};

/// GPT-2's only special token: end of text, also used as padding.
pub const END_OF_TEXT: &str = "<|endoftext|>";

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl Tokenizer {
    /// The tokenizer of a model directory or GGUF file, as `source::resolve` finds it.
    pub fn from_pretrained(name_or_path: &str) -> Result<Self> {
        match crate::source::resolve(name_or_path)? {
            crate::source::ModelSource::Dir(dir) => Self::from_dir(&dir),
            crate::source::ModelSource::Gguf(path) => crate::gguf::load_tokenizer(&path),
        }
    }

    /// Loads the tokenizer of the model directory `dir`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        // A tokenizer.json that is there but unreadable (a directory, a FIFO, a symlink loop) is
        // refused as such, not silently replaced by vocab.json + merges.txt.
        let json = dir.join("tokenizer.json");
        if crate::files::present(&json) {
            crate::files::check_regular(&json, "tokenizer.json")?;
            return Self::from_tokenizer_json(&json);
        }
        let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
        if crate::files::present(&vocab) && crate::files::present(&merges) {
            crate::files::check_regular(&vocab, "vocab.json")?;
            crate::files::check_regular(&merges, "merges.txt")?;
            return Self::from_vocab_and_merges(&vocab, &merges);
        }
        Err(Error::ModelNotFound(format!(
            "no tokenizer in {}: looked for tokenizer.json, or vocab.json with merges.txt",
            dir.display()
        )))
    }

    pub fn from_tokenizer_json(path: &Path) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|err| Error::invalid_file(path, format!("not a valid tokenizer.json ({err})")))?;
        Ok(Tokenizer { inner })
    }

    /// Builds what `GPT2TokenizerFast` builds from the OpenAI files: byte-level BPE without a
    /// prefix space, byte-level decoding, and `<|endoftext|>` as a special token.
    pub fn from_vocab_and_merges(vocab: &Path, merges: &Path) -> Result<Self> {
        let (vocab_str, merges_str) = (vocab.to_string_lossy(), merges.to_string_lossy());
        let bpe = BPE::from_file(&vocab_str, &merges_str).build().map_err(|err| {
            Error::invalid_file(vocab, format!("cannot build BPE from vocab.json and merges.txt ({err})"))
        })?;
        Self::byte_level(bpe, &[END_OF_TEXT]).map_err(|err| Error::invalid_file(vocab, err))
    }

    /// The same tokenizer from its parts (a GGUF file's `tokenizer.ggml.*`): the tokens in id
    /// order, the merges in rank order, and the tokens that are special (`<|endoftext|>`).
    pub(crate) fn from_parts(
        tokens: &[String],
        merges: Vec<(String, String)>,
        specials: &[&str],
    ) -> std::result::Result<Self, String> {
        let vocab: tokenizers::models::bpe::Vocab =
            tokens.iter().enumerate().map(|(id, token)| (token.clone(), id as u32)).collect();
        if vocab.len() != tokens.len() {
            return Err("a token appears twice in the vocabulary".into());
        }
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|err| format!("cannot build BPE from its tokens and merges ({err})"))?;
        Self::byte_level(bpe, specials)
    }

    /// GPT-2's pipeline around `bpe`: byte-level pre-tokenizing (no prefix space), decoding and
    /// post-processing, with `specials` (those in the vocabulary) matched whole before BPE.
    fn byte_level(bpe: BPE, specials: &[&str]) -> std::result::Result<Self, String> {
        let mut inner = tokenizers::Tokenizer::new(bpe);
        let byte_level = ByteLevel::new(false, true, true);
        inner
            .with_pre_tokenizer(Some(byte_level))
            .with_decoder(Some(byte_level))
            .with_post_processor(Some(byte_level));
        let specials: Vec<AddedToken> = specials
            .iter()
            .filter(|s| inner.token_to_id(s).is_some())
            .map(|s| AddedToken::from(s.to_string(), true))
            .collect();
        if !specials.is_empty() {
            inner.add_special_tokens(specials).map_err(|err| err.to_string())?;
        }
        Ok(Tokenizer { inner })
    }

    /// Token ids of `text`, as `tokenizer(text)["input_ids"]` in transformers.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode_fast(text, true)
            .map_err(|err| Error::InvalidArg(format!("cannot encode text: {err}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Text of `ids`, special tokens kept, as `tokenizer.decode(ids)` in transformers.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.check_ids(ids)?;
        self.inner.decode(ids, false).map_err(|err| Error::InvalidArg(format!("cannot decode ids: {err}")))
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
