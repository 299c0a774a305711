//! A model directory's `config.json` and `model.safetensors`, as bytes: `config NUL safetensors`.
//! Whatever they hold, loading returns a model or an `ERR_MODEL_INVALID` error (never a panic, an
//! abort, a hang or an allocation the file's size does not pay for), and a model that loads runs
//! a forward pass without panicking.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nexttoken::load::Weights;
use nexttoken::{Backend, Config, Network};

fuzz_target!(|data: &[u8]| {
    let (config, safetensors) = nexttoken_fuzz::split_at_nul(data);
    let device = nexttoken::device::device_from_name("cpu").unwrap();
    // The safetensors header is parsed even when the config is refused, so that a config the
    // mutations break does not hide the weights from the fuzzer.
    let weights =
        Weights::from_safetensors_bytes(Path::new("model.safetensors"), safetensors.to_vec(), &device);
    let config = match std::str::from_utf8(config) {
        Ok(text) => Config::from_json(text),
        Err(_) => return, // crate::files::read_text refuses it before parsing
    };
    let (mut weights, config) = match (weights, config) {
        (Ok(weights), Ok(config)) => (weights, config),
        (weights, config) => {
            for err in [weights.err(), config.err()].into_iter().flatten() {
                assert_eq!(err.code(), "ERR_MODEL_INVALID", "{err}");
            }
            return;
        }
    };
    // In the checkpoint's own dtype, as a load without `dtype` holds it.
    let dtype = weights.stored_dtype("wte.weight");
    nexttoken_fuzz::check_loaded(Network::load(&mut weights, &config, Backend::Cpu, dtype));
});
