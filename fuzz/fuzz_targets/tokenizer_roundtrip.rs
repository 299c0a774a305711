//! `decode(encode(s)) == s` for any valid UTF-8 `s`, with the real GPT-2 tokenizer: byte-level
//! BPE loses nothing, and `<|endoftext|>` in the text comes back as itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let tokenizer = nexttoken_fuzz::gpt2_tokenizer();
    let ids = tokenizer.encode(text).expect("any text encodes");
    assert!(ids.iter().all(|&id| (id as usize) < tokenizer.vocab_size()), "{ids:?}");
    assert_eq!(tokenizer.decode(&ids).expect("encoded ids decode"), text, "ids {ids:?}");
});
