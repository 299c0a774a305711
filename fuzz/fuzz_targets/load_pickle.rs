//! `pytorch_model.bin`: a zip holding a pickled state dict and its storages. Whatever the bytes,
//! reading it returns a checkpoint or an `ERR_MODEL_INVALID` error (never a panic, an abort, a
//! hang, or an allocation the file's size does not pay for: the memo bomb, a declared shape no
//! file holds), and tiny_gpt2's tensors taken from one that reads give a network that runs.
//!
//! Input: a first byte that chooses. Odd: the rest is the whole file. Even: the rest is `k`, `k`
//! little-endian u16 storage sizes, then `data.pkl`, and the zip around them is built here, so
//! that the fuzzer spends its time on the pickle rather than on finding a valid zip.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nexttoken::load::Weights;
use nexttoken::{Backend, Network};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let bytes = match mode % 2 {
        1 => rest.to_vec(),
        _ => {
            let Some((&k, rest)) = rest.split_first() else { return };
            let k = usize::from(k % 32);
            if rest.len() < 2 * k {
                return;
            }
            let (sizes, pickle) = rest.split_at(2 * k);
            let mut entries = vec![("archive/data.pkl".to_string(), pickle.to_vec())];
            for (i, size) in sizes.chunks_exact(2).enumerate() {
                // Small finite values (f16 and f32 alike: 0x3c00 is f16 1.0, 0x3c003c00 a small f32).
                let size = usize::from(u16::from_le_bytes([size[0], size[1]]) % 4096);
                let values = [0x00, 0x3c].repeat(size / 2 + 1)[..size].to_vec();
                entries.push((format!("archive/data/{i}"), values));
            }
            nexttoken_fuzz::stored_zip(&entries)
        }
    };
    let device = nexttoken::device::device_from_name("cpu").unwrap();
    let mut weights = match Weights::from_pytorch_bytes(Path::new("pytorch_model.bin"), bytes, &device) {
        Ok(weights) => weights,
        Err(err) => {
            assert_eq!(err.code(), "ERR_MODEL_INVALID", "{err}");
            return;
        }
    };
    let dtype = weights.stored_dtype("wte.weight");
    let config = nexttoken_fuzz::tiny_config();
    nexttoken_fuzz::check_loaded(Network::load(&mut weights, &config, Backend::Cpu, dtype));
});
