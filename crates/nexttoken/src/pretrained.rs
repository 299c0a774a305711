//! A loaded model: its network, its tokenizer and `generate`'s defaults, in one object that
//! answers next-token questions. Loading one (`Pretrained::load`) is `crate::load`'s.

use std::sync::{Arc, OnceLock};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::generation::GenerationConfig;
use crate::network::{KvCache, Network, Positions};
use crate::scores::{most_likely, score_text, softmax_in_place, ScoredText, TokenScore};
use crate::tokenizer::Tokenizer;

/// A loaded model. `Pretrained::load` and `load_with` are `crate::load`'s (`load/pretrained.rs`).
pub struct Pretrained {
    pub network: Network,
    pub tokenizer: Arc<Tokenizer>,
    /// `generate`'s defaults from `generation_config.json` (or config.json's special tokens).
    pub generation_config: GenerationConfig,
    /// The most bytes one token stands for (`longest_token_bytes`), found at load.
    pub(crate) longest_token: OnceLock<usize>,
}

/// The most bytes one token of `tokenizer` stands for: its vocabulary entry's length in
/// characters, since byte-level BPE writes each byte as one character (`Ġ` for a space), and
/// special tokens match their text as it is.
pub(crate) fn longest_token_bytes(tokenizer: &Tokenizer) -> usize {
    let ids = 0..tokenizer.vocab_size() as u32;
    ids.filter_map(|id| tokenizer.id_to_token(id).ok())
        .map(|token| token.chars().count())
        .max()
        .unwrap_or(1)
        .max(1)
}

impl Pretrained {
    /// Makes the ids past the tokenizer's vocabulary impossible in `scores`: a model may pad its
    /// embedding matrix (50304 rows for 50257 tokens) and those rows are no token at all.
    pub fn mask_padding(&self, scores: &mut [f32]) {
        if let Some(padding) = scores.get_mut(self.tokenizer.vocab_size()..) {
            padding.fill(f32::NEG_INFINITY);
        }
    }

    /// Whether the model has ids the tokenizer does not (see `mask_padding`).
    pub fn is_padded(&self) -> bool {
        self.tokenizer.vocab_size() < self.config().vocab_size
    }

    pub fn config(&self) -> &Config {
        self.network.config()
    }

    /// The most bytes a text may have and still fit the context: `n_positions` tokens of the
    /// longest token's bytes (128 for GPT-2, so 128 KiB). Byte-level BPE gives every byte of a
    /// text to exactly one token, so a longer text cannot fit however it tokenizes: refusing it
    /// before tokenizing (which takes seconds for megabytes) changes no answer.
    pub fn max_input_bytes(&self) -> usize {
        let longest = *self.longest_token.get_or_init(|| longest_token_bytes(&self.tokenizer));
        self.config().n_positions.saturating_mul(longest)
    }

    /// `Error::InputTooLong` when a text of at least `len` bytes cannot fit the context.
    pub fn check_input_bytes(&self, len: usize) -> Result<()> {
        let max_bytes = self.max_input_bytes();
        if len <= max_bytes {
            return Ok(());
        }
        let n_positions = self.config().n_positions;
        Err(Error::InputTooLong { len, max_bytes, n_positions, token_bytes: max_bytes / n_positions.max(1) })
    }

    /// Token ids of a model input: refused by its byte length first (`check_input_bytes`).
    pub fn encode_input(&self, text: &str) -> Result<Vec<u32>> {
        self.check_input_bytes(text.len())?;
        self.tokenizer.encode(text)
    }

    /// Logits of `ids` as one flat row-major f32 vector: (vocab) for `Last`, (t * vocab) for `All`.
    pub fn logits(&self, ids: &[u32], positions: Positions) -> Result<Vec<f32>> {
        let logits = self.network.forward(ids, &mut KvCache::new(), positions)?;
        Ok(logits.flatten_all()?.to_vec1::<f32>()?)
    }

    /// Softmax of the last position's logits: the next-token distribution.
    pub fn probabilities(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let mut row = self.logits(ids, Positions::Last)?;
        softmax_in_place(&mut row);
        Ok(row)
    }

    /// How likely `ids` is: each token's log-probability given those before it, their sum, the
    /// loss (mean negative log-likelihood, as transformers' `labels=ids`) and the perplexity,
    /// with the `top_k` most likely tokens at each position. Needs at least two tokens.
    pub fn score(&self, ids: &[u32], top_k: usize) -> Result<ScoredText> {
        if ids.len() < 2 {
            return Err(Error::InvalidArg(format!(
                "score needs at least 2 tokens (the first one has no context); got {}",
                ids.len()
            )));
        }
        let logits = self.logits(ids, Positions::All)?;
        score_text(ids, &logits, top_k, &self.tokenizer)
    }

    /// The `k` most likely next tokens after `ids`, best first.
    pub fn top_k(&self, ids: &[u32], k: usize) -> Result<Vec<TokenScore>> {
        most_likely(&self.logits(ids, Positions::Last)?, k, &self.tokenizer)
    }
}
