//! `NativeTokenizer`: GPT-2's tokenizer, synchronous (encoding is fast).

use std::sync::Arc;

use napi::bindgen_prelude::Uint32Array;
use napi_derive::napi;

use crate::errors::to_napi;
use crate::task::{blocking, Blocking};

#[napi]
pub struct NativeTokenizer {
    inner: Arc<nexttoken::Tokenizer>,
}

#[napi]
impl NativeTokenizer {
    #[napi]
    pub fn encode(&self, text: String) -> napi::Result<Uint32Array> {
        Ok(Uint32Array::new(self.inner.encode(&text).map_err(to_napi)?))
    }

    #[napi]
    pub fn decode(&self, ids: Uint32Array) -> napi::Result<String> {
        self.inner.decode(&ids).map_err(to_napi)
    }

    #[napi]
    pub fn id_to_token(&self, id: u32) -> napi::Result<String> {
        self.inner.id_to_token(id).map_err(to_napi)
    }

    #[napi]
    pub fn token_to_id(&self, token: String) -> Option<u32> {
        self.inner.token_to_id(&token)
    }

    #[napi(getter)]
    pub fn vocab_size(&self) -> u32 {
        self.inner.vocab_size() as u32
    }
}

/// Loads the tokenizer of the model directory `path` (tokenizer.json, or vocab.json + merges.txt).
#[napi(ts_return_type = "Promise<NativeTokenizer>")]
pub fn load_tokenizer(
    path: String,
) -> napi::bindgen_prelude::AsyncTask<Blocking<NativeTokenizer, NativeTokenizer>> {
    blocking(move || {
        let inner = nexttoken::Tokenizer::from_pretrained(&path)?;
        Ok(NativeTokenizer::new(Arc::new(inner)))
    })
}

impl NativeTokenizer {
    pub(crate) fn new(inner: Arc<nexttoken::Tokenizer>) -> Self {
        NativeTokenizer { inner }
    }
}
