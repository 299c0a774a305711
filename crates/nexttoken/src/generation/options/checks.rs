//! Each option's own check, named in the option table (`mod.rs`): what transformers accepts for
//! it alone. Checks across options (beams with sampling, a sequence index past the count, the
//! limits) are `GenerateOptions::validate`'s.

use crate::error::{Error, Result};

/// What a check may depend on besides the value.
pub struct Checking {
    /// Sampling options are checked only when sampling, as transformers ignores them otherwise.
    pub do_sample: bool,
    /// Every token id an option names must be below this.
    pub vocab_size: usize,
}

fn invalid(message: String) -> Error {
    Error::InvalidArg(message)
}

/// No check of its own.
pub fn any<T>(_: &str, _: &T, _: &Checking) -> Result<()> {
    Ok(())
}

pub fn at_least_one(name: &str, value: &usize, _: &Checking) -> Result<()> {
    match *value {
        0 => Err(invalid(format!("{name} must be at least 1"))),
        _ => Ok(()),
    }
}

/// Unset, or at least 1.
pub fn unset_or_at_least_one(name: &str, value: &Option<usize>, at: &Checking) -> Result<()> {
    value.as_ref().map_or(Ok(()), |n| at_least_one(name, n, at))
}

pub fn positive(name: &str, value: &f32, _: &Checking) -> Result<()> {
    match value.is_finite() && *value > 0.0 {
        true => Ok(()),
        false => Err(invalid(format!("{name} must be a positive number; got {value}"))),
    }
}

/// The temperature, when sampling.
pub fn sampling_temperature(name: &str, value: &f32, at: &Checking) -> Result<()> {
    match !at.do_sample || (value.is_finite() && *value > 0.0) {
        true => Ok(()),
        false => Err(invalid(format!(
            "{name} must be a positive number when sampling; got {value} (use doSample: false for greedy)"
        ))),
    }
}

/// A probability mass in (0, 1], when sampling.
pub fn sampling_mass(name: &str, value: &f32, at: &Checking) -> Result<()> {
    match !at.do_sample || (*value > 0.0 && *value <= 1.0) {
        true => Ok(()),
        false => Err(invalid(format!("{name} must be in (0, 1]; got {value}"))),
    }
}

/// Unset, or a fraction in [0, 1], when sampling.
pub fn sampling_fraction(name: &str, value: &Option<f32>, at: &Checking) -> Result<()> {
    match value {
        Some(p) if at.do_sample && !(0.0..=1.0).contains(p) => {
            Err(invalid(format!("{name} must be in [0, 1]; got {p}")))
        }
        _ => Ok(()),
    }
}

/// A probability cutoff in [0, 1), when sampling.
pub fn sampling_cutoff(name: &str, value: &f32, at: &Checking) -> Result<()> {
    match !at.do_sample || (0.0..1.0).contains(value) {
        true => Ok(()),
        false => Err(invalid(format!("{name} must be in [0, 1); got {value}"))),
    }
}

fn in_vocabulary(name: &str, ids: &[u32], at: &Checking) -> Result<()> {
    match ids.iter().find(|&&id| id as usize >= at.vocab_size) {
        Some(id) => {
            Err(invalid(format!("{name}: token {id} is outside the vocabulary of {} tokens", at.vocab_size)))
        }
        None => Ok(()),
    }
}

pub fn token_ids(name: &str, ids: &[u32], at: &Checking) -> Result<()> {
    in_vocabulary(name, ids, at)
}

pub fn unset_or_token_id(name: &str, id: &Option<u32>, at: &Checking) -> Result<()> {
    in_vocabulary(name, id.as_slice(), at)
}

/// Non-empty sequences of token ids.
pub fn token_sequences(name: &str, sequences: &[Vec<u32>], at: &Checking) -> Result<()> {
    if sequences.iter().any(Vec::is_empty) {
        return Err(invalid(format!("{name} takes non-empty token sequences")));
    }
    sequences.iter().try_for_each(|ids| in_vocabulary(name, ids, at))
}

/// Non-empty sequences of token ids, each with a finite bias or -Infinity (a ban).
pub fn biased_sequences(name: &str, biases: &[(Vec<u32>, f32)], at: &Checking) -> Result<()> {
    if let Some((_, bias)) = biases.iter().find(|(_, b)| b.is_nan() || *b == f32::INFINITY) {
        return Err(invalid(format!("a bias must be a finite number or -Infinity (a ban); got {bias}")));
    }
    if biases.iter().any(|(ids, _)| ids.is_empty()) {
        return Err(invalid(format!("{name} takes non-empty token sequences")));
    }
    biases.iter().try_for_each(|(ids, _)| in_vocabulary(name, ids, at))
}

/// Strings to stop at: none may be empty (it would match everywhere).
pub fn stop_strings(name: &str, strings: &[String], _: &Checking) -> Result<()> {
    match strings.iter().any(String::is_empty) {
        true => Err(invalid(format!("{name} must not be empty strings"))),
        false => Ok(()),
    }
}

/// transformers' `(start_index, decay_factor)`: a finite factor (transformers takes any; a
/// non-finite one would turn eos's logit into NaN or infinity).
pub fn decay(name: &str, value: &Option<(usize, f64)>, _: &Checking) -> Result<()> {
    match value {
        Some((_, factor)) if !factor.is_finite() => {
            Err(invalid(format!("{name}'s decay factor must be a finite number; got {factor}")))
        }
        _ => Ok(()),
    }
}
