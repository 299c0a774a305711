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

/// A zip of `entries` (name, bytes), each stored as it is, as torch.save writes
/// `pytorch_model.bin` (CRCs left 0: nexttoken does not read them).
pub fn stored_zip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let (mut out, mut directory) = (Vec::new(), Vec::new());
    for (name, data) in entries {
        let offset = out.len() as u32;
        let sizes = (data.len() as u32).to_le_bytes().repeat(2);
        out.extend(0x0403_4b50u32.to_le_bytes());
        out.extend([20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // version, flags, method, time, date, crc
        out.extend(&sizes);
        out.extend((name.len() as u16).to_le_bytes());
        out.extend([0, 0]);
        out.extend(name.as_bytes());
        out.extend(data);
        directory.extend(0x0201_4b50u32.to_le_bytes());
        directory.extend([20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        directory.extend(&sizes);
        directory.extend((name.len() as u16).to_le_bytes());
        directory.extend([0; 12]); // extra and comment lengths, disk, attributes
        directory.extend(offset.to_le_bytes());
        directory.extend(name.as_bytes());
    }
    let (at, count) = (out.len() as u32, entries.len() as u16);
    out.extend(&directory);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0, 0, 0, 0]);
    out.extend(count.to_le_bytes().repeat(2));
    out.extend((directory.len() as u32).to_le_bytes());
    out.extend(at.to_le_bytes());
    out.extend([0, 0]);
    out
}

/// The config of the small GPT-2 the loader targets' seeds hold (scripts/fuzz_seeds.py's
/// `tiny_gpt2()`: one layer, n_embd 2, 3 tokens, 2 positions).
pub fn tiny_config() -> nexttoken::Config {
    let json = r#"{"model_type": "gpt2", "n_layer": 1, "n_head": 1, "n_embd": 2, "n_positions": 2,
        "vocab_size": 3, "bos_token_id": 0, "eos_token_id": 2}"#;
    nexttoken::Config::from_json(json).expect("the tiny config is valid")
}
