//! What the fuzz targets share: the real GPT-2 tokenizer, loaded once per process (loading it
//! takes far longer than one run of a target), and the check that ends the loader targets.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use nexttoken::{Network, Positions, Result, Tokenizer};

/// The 50257-token GPT-2 tokenizer of the tiny test model.
pub fn gpt2_tokenizer() -> Arc<Tokenizer> {
    static TOKENIZER: OnceLock<Arc<Tokenizer>> = OnceLock::new();
    TOKENIZER
        .get_or_init(|| {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../__test__/fixtures/tiny-gpt2");
            Arc::new(Tokenizer::from_dir(&dir).expect("the tiny test model's tokenizer loads"))
        })
        .clone()
}

/// Splits an input at its first NUL byte: text files (JSON) cannot hold one, so a target that
/// takes a text file and something else reads `text NUL rest`. No NUL: all of it is the text.
pub fn split_at_nul(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[]),
    }
}

/// The end of a loader target: a load either failed with `ERR_MODEL_INVALID`, or gave a network
/// that runs one token at the first position (a model that loads must also run).
pub fn check_loaded(network: Result<Network>) {
    let network = match network {
        Ok(network) => network,
        Err(err) => {
            assert_eq!(err.code(), "ERR_MODEL_INVALID", "{err}");
            return;
        }
    };
    let mut cache = nexttoken::KvCache::new();
    if let Err(err) = network.forward(&[0], &mut cache, Positions::Last) {
        panic!("a model that loaded fails its first forward pass: {err}");
    }
}
