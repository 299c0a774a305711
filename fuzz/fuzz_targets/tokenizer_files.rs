//! A tokenizer's files: `tokenizer.json`, or `vocab.json` and `merges.txt`. Whatever they hold,
//! loading them gives a tokenizer or an `ERR_MODEL_INVALID` error (never a panic: the pipeline is
//! GPT-2's, rebuilt from the vocabulary and merges, so no file brings a regex or a normalizer of
//! its own), and a tokenizer that loads encodes a text into ids it has and decodes them, without
//! a panic (libFuzzer's hook aborts even on one that `Tokenizer` catches).
//!
//! Input: a first byte that chooses. Even: `tokenizer.json NUL text`. Odd: `vocab.json NUL
//! merges.txt NUL text`.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nexttoken::Tokenizer;
use nexttoken_fuzz::split_at_nul;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let (tokenizer, text) = match mode % 2 {
        0 => {
            let (json, text) = split_at_nul(rest);
            (Tokenizer::from_tokenizer_json_bytes(Path::new("tokenizer.json"), json), text)
        }
        _ => {
            let (vocab, rest) = split_at_nul(rest);
            let (merges, text) = split_at_nul(rest);
            let Ok(merges) = std::str::from_utf8(merges) else { return }; // read_text refuses it
            (Tokenizer::from_vocab_and_merges_bytes(Path::new("vocab.json"), vocab, merges), text)
        }
    };
    let tokenizer = match tokenizer {
        Ok(tokenizer) => tokenizer,
        Err(err) => {
            assert_eq!(err.code(), "ERR_MODEL_INVALID", "{err}");
            return;
        }
    };
    let text = String::from_utf8_lossy(text);
    match tokenizer.encode(&text) {
        Ok(ids) => {
            assert!(ids.iter().all(|&id| (id as usize) < tokenizer.vocab_size()), "{ids:?}");
            tokenizer.decode(&ids).expect("encoded ids decode");
        }
        // A vocabulary without a byte the text has and no unk_token: an error, not a panic.
        Err(err) => assert_eq!(err.code(), "ERR_INVALID_ARG", "{err}"),
    }
    for id in 0..tokenizer.vocab_size().min(64) as u32 {
        tokenizer.decode(&[id]).expect("every id decodes");
        tokenizer.id_to_token(id).expect("every id has a token");
    }
});
