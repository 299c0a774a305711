//! Readers for values that transformers' files (and JS) may spell more than one way, named by
//! the option table's `read` column. Each returns `Option<T>`: `null` is unset.

use serde::{Deserialize, Deserializer};

use super::SequenceBias;

/// One value or a list of them, as `eos_token_id` (`50256` or `[50256, 198]`) and
/// `stop_strings` are written.
pub fn one_or_many<'de, D, T>(deserializer: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        One(T),
        Many(Vec<T>),
    }
    Ok(Option::<OneOrMany<T>>::deserialize(deserializer)?.map(|value| match value {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    }))
}

/// `sequence_bias` as a list of `[[ids], bias]` pairs, or as transformers saves its dict: keys
/// are Python tuples written out, `"(1, 2)"` or `"(1,)"`.
pub fn sequence_bias<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<SequenceBias>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Spelling {
        Pairs(SequenceBias),
        Dict(std::collections::BTreeMap<String, f32>),
    }
    let parse_tuple = |key: &str| -> Option<Vec<u32>> {
        let inner = key.trim().strip_prefix('(')?.strip_suffix(')')?;
        inner.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|id| id.parse().ok()).collect()
    };
    Option::<Spelling>::deserialize(deserializer)?
        .map(|bias| match bias {
            Spelling::Pairs(pairs) => Ok(pairs),
            Spelling::Dict(dict) => dict
                .into_iter()
                .map(|(key, bias)| {
                    let ids = parse_tuple(&key).ok_or_else(|| {
                        serde::de::Error::custom(format!("sequence_bias key {key:?} is not a tuple of ids"))
                    })?;
                    Ok((ids, bias))
                })
                .collect(),
        })
        .transpose()
}
