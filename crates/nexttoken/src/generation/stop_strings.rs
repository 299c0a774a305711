//! transformers' `stop_strings` (`StopStringCriteria`): generation ends as soon as a token
//! completes one of the strings anywhere in the text, prompt included, across token boundaries,
//! even when the token runs past the string's end. The text keeps the string, unlike `stop`.

use crate::error::Result;
use crate::tokenizer::Tokenizer;

pub struct StopStrings {
    strings: Vec<String>,
    /// Tokens to decode behind the newest one: every token is at least one byte, so this many
    /// cover the longest string.
    window: usize,
}

impl StopStrings {
    pub fn new(strings: Vec<String>) -> Self {
        let window = strings.iter().map(String::len).max().unwrap_or(0);
        StopStrings { strings, window }
    }

    /// Whether the last of `ids` completes a stop string: one that occurs in the text and ends
    /// inside the text that token added.
    pub fn completed_by_last(&self, tokenizer: &Tokenizer, ids: &[u32]) -> Result<bool> {
        if self.strings.is_empty() || ids.is_empty() {
            return Ok(false);
        }
        let tail = &ids[ids.len().saturating_sub(self.window + 1)..];
        let before = tokenizer.decode(&tail[..tail.len() - 1])?;
        let after = tokenizer.decode(tail)?;
        // Byte-level decoding appends, except that a character the new token completes replaces
        // the U+FFFD shown for its first bytes: the new text starts where the two differ.
        let new_from = before.bytes().zip(after.bytes()).take_while(|(a, b)| a == b).count();
        Ok(self
            .strings
            .iter()
            .any(|stop| after.match_indices(stop.as_str()).any(|(at, _)| at + stop.len() > new_from)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn tokenizer() -> Tokenizer {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures/tiny-gpt2");
        Tokenizer::from_dir(&dir).unwrap()
    }

    /// The number of tokens after which generation would stop, feeding `text`'s tokens one by one.
    fn stops_after(stops: &[&str], text: &str) -> Option<usize> {
        let tok = tokenizer();
        let ids = tok.encode(text).unwrap();
        let stops = StopStrings::new(stops.iter().map(|s| s.to_string()).collect());
        (1..=ids.len()).find(|&n| stops.completed_by_last(&tok, &ids[..n]).unwrap())
    }

    #[test]
    fn matches_across_tokens_and_with_an_overhang() {
        // " Hello", " world", "!": "lo wo" spans two tokens and ends inside " world".
        assert_eq!(stops_after(&["lo wo"], " Hello world!"), Some(2));
        assert_eq!(stops_after(&["Hel"], " Hello world!"), Some(1));
        assert_eq!(stops_after(&["xyz"], " Hello world!"), None);
    }

    #[test]
    fn a_string_completed_by_a_split_character_is_found() {
        // "😀" is several byte-level tokens: the string ends in the one that completes it.
        let tok = tokenizer();
        let ids = tok.encode("a😀").unwrap();
        assert!(ids.len() > 2);
        assert_eq!(stops_after(&["a😀"], "a😀"), Some(ids.len()));
    }
}
