//! A text the model has read, kept with its KV cache, so that appending a token costs one
//! position instead of re-reading the whole text (the notebook's step 3, done the way generation
//! does it). Sessions are owned by one caller: they take no batch slot, only memory.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::generation::{CallOptions, Generation};
use crate::network::{KvCache, Positions};
use crate::pretrained::Pretrained;
use crate::scores::{most_likely, softmax_in_place, TokenScore};

pub struct Session {
    pretrained: Arc<Pretrained>,
    ids: Vec<u32>,
    /// Holds exactly the positions of `ids`.
    cache: KvCache,
    /// The logits after the last token, once computed (None after a truncation).
    next_logits: Option<Vec<f32>>,
    positions_computed: usize,
}

impl Session {
    pub fn new(pretrained: Arc<Pretrained>) -> Self {
        Session {
            pretrained,
            ids: Vec::new(),
            cache: KvCache::new(),
            next_logits: None,
            positions_computed: 0,
        }
    }

    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Positions this session has run through the model: one per appended token, plus one to
    /// recompute the last position's logits after a truncation.
    pub fn positions_computed(&self) -> usize {
        self.positions_computed
    }

    /// Reads `ids` after the text so far: only they go through the model. On error (an id out
    /// of the vocabulary, the context full) the session is unchanged.
    pub fn append(&mut self, ids: &[u32]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let network = &self.pretrained.network;
        network.check_input(ids, self.cache.len())?;
        let logits = network.forward(ids, &mut self.cache, Positions::Last)?;
        self.next_logits = Some(logits.flatten_all()?.to_vec1::<f32>()?);
        self.ids.extend_from_slice(ids);
        self.positions_computed += ids.len();
        Ok(())
    }

    /// The logits for the token after the text; computed at most once per text.
    pub fn next_logits(&mut self) -> Result<&[f32]> {
        if self.next_logits.is_none() {
            let last = *self
                .ids
                .last()
                .ok_or_else(|| Error::InvalidArg("the session is empty: append some text first".into()))?;
            // After a truncation the cache holds the last token but not its logits: read it again.
            self.cache.truncate(self.ids.len() - 1);
            self.ids.pop();
            self.append(&[last])?;
        }
        Ok(self.next_logits.as_deref().unwrap_or_default())
    }

    /// The next-token distribution after the text.
    pub fn probabilities(&mut self) -> Result<Vec<f32>> {
        let mut row = self.next_logits()?.to_vec();
        softmax_in_place(&mut row);
        Ok(row)
    }

    /// The `k` most likely next tokens after the text, best first.
    pub fn top_k(&mut self, k: usize) -> Result<Vec<TokenScore>> {
        let tokenizer = self.pretrained.tokenizer.clone();
        most_likely(self.next_logits()?, k, &tokenizer)
    }

    /// An independent session with the same text: its own copy of the cache (the positions
    /// held, for every layer: 2 x n_layer x ids x n_embd floats), so that neither sees the
    /// other's appends.
    pub fn fork(&self) -> Result<Session> {
        Ok(Session {
            pretrained: self.pretrained.clone(),
            ids: self.ids.clone(),
            cache: self.cache.deep_copy()?,
            next_logits: self.next_logits.clone(),
            positions_computed: 0,
        })
    }

    /// Keeps the first `len` tokens (nothing happens when the text is not longer).
    pub fn truncate(&mut self, len: usize) {
        if len < self.ids.len() {
            self.ids.truncate(len);
            self.cache.truncate(len);
            self.next_logits = None;
        }
    }

    /// A generation that continues the text from a copy of this session's cache: the text is not
    /// read again (its last token is, to give the first logits).
    pub fn generation(&self, options: CallOptions) -> Result<Generation> {
        if self.ids.is_empty() {
            return Err(Error::InvalidArg("the session is empty: append some text first".into()));
        }
        let mut cache = self.cache.deep_copy()?;
        cache.truncate(self.ids.len() - 1);
        Generation::with_cache(self.pretrained.clone(), self.ids.clone(), cache, options)
    }
}
