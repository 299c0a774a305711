//! Beam search's `early_stopping`, as transformers spells it: `true`, `false` or `"never"`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlyStopping {
    /// `true`: stop as soon as `num_beams` sequences have finished.
    Done,
    /// `false` (the default): stop when no running beam can beat the finished ones at its
    /// current length.
    Heuristic,
    /// `"never"`: stop only when no running beam can beat them at any length (the canonical rule).
    Never,
}

/// The value as written: a boolean or a string.
#[derive(Deserialize, Serialize)]
#[serde(untagged)]
enum Spelling {
    Flag(bool),
    Word(String),
}

impl<'de> Deserialize<'de> for EarlyStopping {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Spelling::deserialize(deserializer)? {
            Spelling::Flag(true) => Ok(EarlyStopping::Done),
            Spelling::Flag(false) => Ok(EarlyStopping::Heuristic),
            Spelling::Word(word) if word == "never" => Ok(EarlyStopping::Never),
            Spelling::Word(word) => Err(serde::de::Error::custom(format!(
                "early_stopping is true, false or \"never\"; got {word:?}"
            ))),
        }
    }
}

impl Serialize for EarlyStopping {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            EarlyStopping::Done => Spelling::Flag(true),
            EarlyStopping::Heuristic => Spelling::Flag(false),
            EarlyStopping::Never => Spelling::Word("never".into()),
        }
        .serialize(serializer)
    }
}
