//! A GGUF file, as bytes. Whatever it holds, reading it returns a model or an `ERR_MODEL_INVALID`
//! error (never a panic, an abort, a hang or an allocation the file's size does not pay for), and
//! a model that loads runs a forward pass without panicking.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nexttoken::files::Source;
use nexttoken::gguf::GgufFile;
use nexttoken::{Network, Positions};

fuzz_target!(|data: &[u8]| {
    let device = nexttoken::device::device_from_name("cpu").unwrap();
    let path = Path::new("model.gguf");
    // The same steps as Pretrained::load for a GGUF, from memory.
    let loaded = GgufFile::from_source(path, Source::Bytes(data.to_vec()))
        .and_then(|file| nexttoken::gguf::from_file(file, &device))
        .and_then(|mut model| Ok((Network::load_in_stored_types(&mut model.weights, &model.config, &device)?, model)));
    let (network, _model) = match loaded {
        Ok(loaded) => loaded,
        Err(err) => {
            assert_eq!(err.code(), "ERR_MODEL_INVALID", "{err}");
            return;
        }
    };
    // A loaded model must also run: one token at the first position.
    let mut cache = nexttoken::KvCache::new();
    if let Err(err) = network.forward(&[0], &mut cache, Positions::Last) {
        panic!("a model that loaded fails its first forward pass: {err}");
    }
});
