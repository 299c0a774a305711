//! `model.safetensors.index.json`: whatever it holds, reading it gives the shard files it names
//! or an `ERR_MODEL_INVALID` error, and every name it gives is a plain file name in the model's
//! directory (nothing an index says reaches outside it).
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use nexttoken::load::Weights;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return }; // crate::files::read_text refuses it
    match Weights::shard_files(Path::new("model.safetensors.index.json"), text) {
        Ok(shards) => {
            for shard in shards {
                let mut components = Path::new(&shard).components();
                assert!(
                    matches!((components.next(), components.next()), (Some(Component::Normal(_)), None)),
                    "{shard:?} is not a file name"
                );
                assert!(!shard.contains(['/', '\\', ':', '\0']), "{shard:?}");
            }
        }
        Err(err) => assert_eq!(err.code(), "ERR_MODEL_INVALID", "{err}"),
    }
});
