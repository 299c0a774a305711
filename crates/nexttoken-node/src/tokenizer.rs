//! `NativeTokenizer`: GPT-2's tokenizer, synchronous (encoding is fast), each call guarded: a
//! panic in the tokenizer is an `ERR_INTERNAL` error, not an aborted process.

use std::mem::ManuallyDrop;
use std::sync::Arc;

use napi::bindgen_prelude::{Object, Uint32Array};
use napi::Env;
use napi_derive::napi;

use crate::allocator::return_free_memory;
use crate::errors::{caught, guarded, quietly};
use crate::task::on_task_thread;

#[napi]
pub struct NativeTokenizer {
    /// Taken only in `drop`, to learn whether this was the last holder.
    inner: ManuallyDrop<Arc<nexttoken::Tokenizer>>,
}

#[napi]
impl NativeTokenizer {
    #[napi]
    pub fn encode(&self, text: String) -> napi::Result<Uint32Array> {
        guarded(|| Ok(Uint32Array::new(self.inner.encode(&text)?)))
    }

    #[napi]
    pub fn decode(&self, ids: Uint32Array) -> napi::Result<String> {
        guarded(|| self.inner.decode(&ids))
    }

    #[napi]
    pub fn id_to_token(&self, id: u32) -> napi::Result<String> {
        guarded(|| self.inner.id_to_token(id))
    }

    #[napi]
    pub fn token_to_id(&self, token: String) -> napi::Result<Option<u32>> {
        caught(|| Ok(self.inner.token_to_id(&token)))
    }

    #[napi(getter)]
    pub fn vocab_size(&self) -> napi::Result<u32> {
        caught(|| Ok(self.inner.vocab_size() as u32))
    }
}

/// Loads the tokenizer of the model directory `path` (tokenizer.json, or vocab.json + merges.txt).
#[napi(ts_return_type = "Promise<NativeTokenizer>")]
pub fn load_tokenizer<'env>(env: &'env Env, path: String) -> napi::Result<Object<'env>> {
    caught(|| {
        let load = move || Ok(NativeTokenizer::new(Arc::new(nexttoken::Tokenizer::from_pretrained(&path)?)));
        on_task_thread(env, load, |tokenizer| tokenizer)
    })
}

impl NativeTokenizer {
    pub(crate) fn new(inner: Arc<nexttoken::Tokenizer>) -> Self {
        NativeTokenizer { inner: ManuallyDrop::new(inner) }
    }
}

/// A model's tokenizer usually outlives it (the JS `Tokenizer` until the garbage collector takes
/// it): where this was its last holder, its tables (tens of MB for GPT-2's vocabulary) are
/// returned to the system too, as the model's are on dispose().
impl Drop for NativeTokenizer {
    fn drop(&mut self) {
        // SAFETY: `inner` is not used again; this is the wrapper's end.
        let inner = unsafe { ManuallyDrop::take(&mut self.inner) };
        quietly(|| {
            let freed = Arc::into_inner(inner).map(drop).is_some();
            if freed {
                return_free_memory();
            }
        });
    }
}
