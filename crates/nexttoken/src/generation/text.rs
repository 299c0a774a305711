//! The completion's text as it grows one token at a time: deltas that never split a UTF-8
//! character (a byte-level BPE token can end mid-character) and never show text that may turn
//! out to be the start of a stop string.

use std::sync::Arc;

use crate::error::Result;
use crate::tokenizer::Tokenizer;

/// What decoding shows for bytes that do not (yet) form a whole character.
const REPLACEMENT: char = '\u{FFFD}';

pub struct TextStream {
    tokenizer: Arc<Tokenizer>,
    stop: Vec<String>,
    ids: Vec<u32>,
    /// `ids[..settled_ids]` decode to `settled`, which ends on a whole character. Byte-level
    /// decoding is concatenation, so later text is decoded from `settled_ids` on only.
    settled_ids: usize,
    settled: String,
    /// Decoded text of all ids: `settled` + the decoding of the unsettled tail.
    text: String,
    /// Bytes of `text` already handed out as deltas.
    emitted: usize,
    /// Where the first stop string starts in `text`, once one has appeared.
    stopped_at: Option<usize>,
}

impl TextStream {
    pub fn new(tokenizer: Arc<Tokenizer>, stop: Vec<String>) -> Self {
        TextStream {
            tokenizer,
            stop,
            ids: Vec::new(),
            settled_ids: 0,
            settled: String::new(),
            text: String::new(),
            emitted: 0,
            stopped_at: None,
        }
    }

    /// Adds a token and returns the text that is now safe to show.
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.ids.push(id);
        let tail = self.tokenizer.decode(&self.ids[self.settled_ids..])?;
        if !tail.ends_with(REPLACEMENT) {
            self.settled.push_str(&tail);
            self.settled_ids = self.ids.len();
            self.text.clone_from(&self.settled);
        } else {
            self.text = format!("{}{tail}", self.settled);
        }

        if let Some(at) = self.find_stop() {
            self.stopped_at = Some(at);
            return Ok(self.take_until(at));
        }
        let whole_chars = self.text.trim_end_matches(REPLACEMENT).len();
        let safe = whole_chars - self.partial_stop_len(&self.text[..whole_chars]);
        Ok(self.take_until(safe))
    }

    /// Whatever is still held back (an unfinished character, a possible stop-string start).
    pub fn flush(&mut self) -> String {
        self.take_until(self.completion().len())
    }

    /// True once the text contains a stop string.
    pub fn stopped(&self) -> bool {
        self.stopped_at.is_some()
    }

    /// The completion so far, cut before the stop string if one appeared.
    pub fn completion(&self) -> &str {
        &self.text[..self.stopped_at.unwrap_or(self.text.len())]
    }

    fn take_until(&mut self, end: usize) -> String {
        if end <= self.emitted {
            return String::new();
        }
        let delta = self.text[self.emitted..end].to_string();
        self.emitted = end;
        delta
    }

    /// The earliest stop string in the text, searching only where a new one can be: it must
    /// end in text not yet emitted.
    fn find_stop(&self) -> Option<usize> {
        self.stop
            .iter()
            .filter_map(|stop| {
                let mut from = self.emitted.saturating_sub(stop.len() - 1);
                while !self.text.is_char_boundary(from) {
                    from -= 1;
                }
                self.text[from..].find(stop.as_str()).map(|at| from + at)
            })
            .min()
    }

    /// Length of the longest end of `text` that is a proper start of some stop string.
    fn partial_stop_len(&self, text: &str) -> usize {
        self.stop
            .iter()
            .flat_map(|stop| {
                stop.char_indices()
                    .skip(1)
                    .map(|(i, _)| &stop[..i])
                    .filter(|start| text.ends_with(start))
                    .map(str::len)
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn tokenizer() -> Arc<Tokenizer> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures/tiny-gpt2");
        Arc::new(Tokenizer::from_dir(&dir).unwrap())
    }

    fn stream_all(stream: &mut TextStream, ids: &[u32]) -> Vec<String> {
        let mut deltas: Vec<String> = ids.iter().map(|&id| stream.push(id).unwrap()).collect();
        deltas.push(stream.flush());
        deltas
    }

    #[test]
    fn holds_back_split_characters() {
        let tok = tokenizer();
        let text = "é😀 ok 日本語";
        let ids = tok.encode(text).unwrap();
        let mut stream = TextStream::new(tok.clone(), vec![]);
        let deltas = stream_all(&mut stream, &ids);
        assert!(deltas.iter().all(|d| !d.contains(REPLACEMENT)), "{deltas:?}");
        assert_eq!(deltas.concat(), text);
        assert!(ids.len() > text.chars().count(), "the emoji and CJK span several tokens");
    }

    #[test]
    fn stops_before_a_stop_string_and_never_shows_it() {
        let tok = tokenizer();
        let ids = tok.encode("one two. three four").unwrap();
        let mut stream = TextStream::new(tok.clone(), vec![". th".into()]);
        let mut shown = String::new();
        for &id in &ids {
            shown.push_str(&stream.push(id).unwrap());
            assert!(!shown.contains('.'), "a possible stop start leaked: {shown:?}");
            if stream.stopped() {
                break;
            }
        }
        assert!(stream.stopped());
        shown.push_str(&stream.flush());
        assert_eq!(shown, "one two");
        assert_eq!(stream.completion(), "one two");
    }

    #[test]
    fn releases_a_false_stop_start() {
        let tok = tokenizer();
        let ids = tok.encode("a. b").unwrap();
        let mut stream = TextStream::new(tok.clone(), vec![". c".into()]);
        assert_eq!(stream_all(&mut stream, &ids).concat(), "a. b");
        assert!(!stream.stopped());
    }
}
