//! A GGUF file, as bytes. Whatever it holds, reading it returns a model or an `ERR_MODEL_INVALID`
//! error (never a panic, an abort, a hang or an allocation the file's size does not pay for), and
//! a model that loads runs a forward pass without panicking.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nexttoken::files::Source;
use nexttoken::gguf::GgufFile;
use nexttoken::load::GgufModel;
use nexttoken::{Backend, Network};

fuzz_target!(|data: &[u8]| {
    let device = nexttoken::device::device_from_name("cpu").unwrap();
    let path = Path::new("model.gguf");
    // The same steps as Pretrained::load for a GGUF, from memory.
    let network = GgufFile::from_source(path, Source::Bytes(data.to_vec()))
        .and_then(|file| GgufModel::read(file, &device))
        .and_then(|mut model| Network::load_in_stored_types(&mut model.weights, &model.config, Backend::Cpu));
    nexttoken_fuzz::check_loaded(network);
});
