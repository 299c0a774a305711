//! Streamed text (`generation::TextStream`): for any token ids of the GPT-2 vocabulary, the
//! deltas it hands out concatenate to the decoding of all the ids, whatever UTF-8 the byte-level
//! tokens split or leave unfinished. With a stop string, they concatenate to the text before the
//! stop string's first appearance. Input: `stop NUL ids` (two bytes an id; an empty stop: none).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nexttoken::generation::TextStream;

fuzz_target!(|data: &[u8]| {
    let (stop, ids) = nexttoken_fuzz::split_at_nul(data);
    let Ok(stop) = std::str::from_utf8(stop) else { return };
    // The options refuse an empty stop string, so a stream never gets one.
    let stop: Vec<String> = if stop.is_empty() { vec![] } else { vec![stop.to_string()] };
    let tokenizer = nexttoken_fuzz::gpt2_tokenizer();
    let vocab_size = tokenizer.vocab_size() as u32;
    let ids: Vec<u32> = ids
        .chunks_exact(2)
        .map(|pair| u32::from(u16::from_le_bytes([pair[0], pair[1]])) % vocab_size)
        .collect();

    let mut stream = TextStream::new(tokenizer.clone(), stop.clone());
    let mut shown = String::new();
    let mut pushed = 0;
    for &id in &ids {
        shown.push_str(&stream.push(id).expect("ids in the vocabulary decode"));
        pushed += 1;
        if stream.stopped() {
            break; // the generator stops here too
        }
    }
    shown.push_str(&stream.flush());

    let full = tokenizer.decode(&ids[..pushed]).expect("ids in the vocabulary decode");
    let expected = match stop.first().and_then(|s| full.find(s.as_str())) {
        Some(at) => &full[..at],
        None => full.as_str(),
    };
    assert_eq!(shown, expected, "ids {:?}, stop {stop:?}", &ids[..pushed]);
    assert_eq!(stream.completion(), expected);
    assert_eq!(stream.stopped(), expected.len() < full.len());
});
