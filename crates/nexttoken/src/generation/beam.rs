//! Beam search as transformers' `_beam_search` runs it (greedy beams, one prompt): at each step
//! every running beam's processed log-probabilities plus its score give candidates; the best
//! `beams_to_keep` of them either finish (eos, or the length limit) into a pool of the
//! `num_beams` best finished sequences, scored by length, or run on as the next beams. The same
//! float32 arithmetic and the same masks (-1e9) as transformers, so that the choices are its own.

use std::sync::Arc;
use std::time::Instant;

use super::generator::{Output, StopReason, Timings};
use super::limits::Limits;
use super::options::{CallOptions, EarlyStopping, GenerateOptions};
use super::processors::{apply_processors, log_softmax, Context};
use crate::error::{Error, Result};
use crate::network::{KvCache, Positions};
use crate::pretrained::Pretrained;

/// transformers' mask for a candidate that must not be chosen.
const MASKED: f32 = -1.0e9;

struct Beam {
    ids: Vec<u32>,
    cache: KvCache,
    score: f32,
}

struct Candidate {
    score: f32,
    beam: usize,
    token: u32,
    /// Ends here: an eos token, or the length limit.
    finishes: bool,
}

struct Finished {
    ids: Vec<u32>,
    score: f32,
    /// A real finished sequence (not one of the initial masked slots).
    done: bool,
}

/// Beam search from `prompt` with the call's options; returns the `num_return_sequences` best
/// finished sequences, best first, each with its `sequence_score`.
pub fn beam_search(pretrained: Arc<Pretrained>, prompt: Vec<u32>, call: CallOptions) -> Result<Vec<Output>> {
    let options = GenerateOptions::resolve(call, &pretrained.generation_config);
    let config = pretrained.config();
    options.validate(config.vocab_size)?;
    if options.num_beams < 2 {
        return Err(Error::InvalidArg("beam search needs numBeams of 2 or more".into()));
    }
    if !options.stop.is_empty() || !options.stop_strings.is_empty() {
        return Err(Error::InvalidArg("stop and stopStrings are not supported with beam search yet".into()));
    }
    if prompt.is_empty() {
        return Err(Error::InvalidArg("beam search needs a prompt".into()));
    }
    let network = &pretrained.network;
    network.check_input(&prompt, 0)?;
    let prompt_len = prompt.len();
    Limits::HARD.admit(&options, 1, prompt_len, config, 1)?; // before any beam's cache exists
    let budget = options.new_token_budget(prompt_len, config.n_positions)?;
    // Saturating: generation_config.json may ask for up to 2^64 - 1 new tokens.
    let max_length = prompt_len.saturating_add(budget).min(config.n_positions);
    let num_beams = options.num_beams;
    let eos = &options.eos_token_id;
    let beams_to_keep = 2.max(1 + eos.len()) * num_beams;
    let started = Instant::now();

    // Every beam starts as the prompt; all but the first are masked so that the first step
    // does not pick the same continuation num_beams times.
    let mut cache = KvCache::new();
    let first = network.forward(&prompt, &mut cache, Positions::Last)?.flatten_all()?.to_vec1::<f32>()?;
    let mut rows: Vec<Vec<f32>> = vec![first; num_beams];
    let mut beams: Vec<Beam> = Vec::with_capacity(num_beams);
    for b in 0..num_beams {
        let cache = if b + 1 == num_beams { std::mem::take(&mut cache) } else { cache.deep_copy()? };
        beams.push(Beam { ids: prompt.clone(), cache, score: if b == 0 { 0.0 } else { MASKED } });
    }
    let mut finished: Vec<Finished> =
        (0..num_beams).map(|_| Finished { ids: Vec::new(), score: MASKED, done: false }).collect();
    let mut improvable = true;
    let mut cur_len = prompt_len;
    loop {
        let candidates =
            best_candidates(&pretrained, &beams, &mut rows, &options, prompt_len, max_length, beams_to_keep)?;
        let candidates: Vec<Candidate> = candidates
            .into_iter()
            .map(|(score, beam, token)| {
                let finishes = eos.contains(&token) || cur_len + 1 >= max_length;
                Candidate { score, beam, token, finishes }
            })
            .collect();

        // The finished pool: the candidates among the first num_beams that finish, scored by
        // length, merged with the pool so far; the best num_beams stay.
        let length = length_factor(cur_len + 1 - prompt_len, options.length_penalty);
        let full = finished.iter().all(|f| f.done) && options.early_stopping == EarlyStopping::Done;
        let mut merged: Vec<Finished> = std::mem::take(&mut finished);
        for (k, c) in candidates.iter().enumerate() {
            let just_finished = c.finishes && k < num_beams;
            let mut score = c.score / length;
            if full {
                score += MASKED;
            }
            if !improvable {
                score += MASKED;
            }
            if !just_finished {
                score += MASKED;
            }
            let ids = [&beams[c.beam].ids[..], &[c.token]].concat();
            merged.push(Finished { ids, score, done: just_finished });
        }
        finished = top_by_score(merged, num_beams, |f| f.score);

        // The next running beams: the best candidates that do not finish.
        let running: Vec<(f32, usize, u32)> = top_by_score(
            candidates
                .iter()
                .map(|c| (c.score + if c.finishes { MASKED } else { 0.0 }, c.beam, c.token))
                .collect(),
            num_beams,
            |c| c.0,
        );
        let all_finish = candidates.iter().all(|c| c.finishes);
        cur_len += 1;

        // Can a running beam still beat the finished ones?
        let best_length = match options.early_stopping {
            EarlyStopping::Never if options.length_penalty > 0.0 => max_length - prompt_len,
            _ => cur_len - prompt_len,
        };
        let best_possible = running[0].0 / length_factor(best_length, options.length_penalty);
        let worst = finished.iter().map(|f| f.score).fold(f32::INFINITY, f32::min);
        // transformers compares with the worst finished score where a slot is finished, -1e9 where not.
        let beatable = finished.iter().any(|f| best_possible > if f.done { worst } else { MASKED });
        improvable = improvable && beatable;
        let all_done = finished.iter().all(|f| f.done) && options.early_stopping == EarlyStopping::Done;
        if !improvable || all_done || all_finish {
            break;
        }
        beams = advance(beams, &running)?;
        let mut batch: Vec<(&[u32], &mut KvCache)> =
            beams.iter_mut().map(|b| (&b.ids[b.ids.len() - 1..], &mut b.cache)).collect();
        rows = network.forward_batch(&mut batch)?.to_vec2::<f32>()?;
    }

    let elapsed = started.elapsed();
    let tokenizer = &pretrained.tokenizer;
    finished
        .into_iter()
        .take(options.num_return_sequences)
        .map(|f| {
            let new_ids = f.ids[prompt_len..].to_vec();
            let stop_reason = match new_ids.last() {
                Some(last) if eos.contains(last) => StopReason::Eos,
                _ if f.ids.len() >= config.n_positions => StopReason::Context,
                _ => StopReason::Length,
            };
            Ok(Output {
                text: tokenizer.decode(&f.ids)?,
                completion: tokenizer.decode(&new_ids)?,
                timings: Timings {
                    prompt_tokens: prompt_len,
                    generated_tokens: new_ids.len(),
                    generated: elapsed,
                    ..Timings::default()
                },
                ids: f.ids,
                new_ids,
                stop_reason: Some(stop_reason),
                scores: None,
                sequence_score: Some(f.score),
            })
        })
        .collect()
}

/// The `keep` best (score, beam, token) continuations over all beams: each beam's processed
/// log-probabilities plus its score. The best `keep` overall are among each beam's best `keep`.
fn best_candidates(
    pretrained: &Pretrained,
    beams: &[Beam],
    rows: &mut [Vec<f32>],
    options: &GenerateOptions,
    prompt_len: usize,
    max_length: usize,
    keep: usize,
) -> Result<Vec<(f32, usize, u32)>> {
    let mut all = Vec::with_capacity(keep * beams.len());
    for (b, (beam, row)) in beams.iter().zip(rows.iter_mut()).enumerate() {
        pretrained.mask_padding(row);
        log_softmax(row);
        let new_tokens = beam.ids.len() - prompt_len;
        let at = Context {
            ids: &beam.ids,
            prompt_width: prompt_len,
            new_tokens,
            last: beam.ids.len() + 1 >= max_length,
        };
        apply_processors(row, &at, options);
        let best = top_by_score((0..row.len() as u32).collect(), keep, |&t| row[t as usize]);
        all.extend(best.into_iter().map(|t| (row[t as usize] + beam.score, b, t)));
    }
    // Ties (rare: equal floats) go to the lower flat index, beam-major as transformers flattens.
    Ok(top_by_score(all, keep, |c| c.0))
}

/// length^length_penalty as transformers computes it: a Python float, then an f32 divisor.
fn length_factor(length: usize, length_penalty: f32) -> f32 {
    (length as f64).powf(length_penalty as f64) as f32
}

/// The `k` highest-scoring items, best first; equal scores keep their order.
fn top_by_score<T>(mut items: Vec<T>, k: usize, score: impl Fn(&T) -> f32) -> Vec<T> {
    if items.len() > k {
        items.select_nth_unstable_by(k, |a, b| score(b).total_cmp(&score(a)));
    }
    items.truncate(k);
    items.sort_by(|a, b| score(b).total_cmp(&score(a)));
    items
}

/// The next beams: each extends its parent with its token, taking the parent's cache when it
/// is the parent's only child and a copy otherwise.
fn advance(beams: Vec<Beam>, running: &[(f32, usize, u32)]) -> Result<Vec<Beam>> {
    let mut children = vec![0usize; beams.len()];
    running.iter().for_each(|&(_, parent, _)| children[parent] += 1);
    let mut parents: Vec<Option<Beam>> = beams.into_iter().map(Some).collect();
    let mut next = Vec::with_capacity(running.len());
    for &(score, parent, token) in running {
        children[parent] -= 1;
        let (mut ids, cache) = match children[parent] {
            0 => {
                let beam =
                    parents[parent].take().ok_or_else(|| Error::Internal("a beam was taken twice".into()))?;
                (beam.ids, beam.cache)
            }
            _ => {
                let beam = parents[parent]
                    .as_ref()
                    .ok_or_else(|| Error::Internal("a beam was taken twice".into()))?;
                (beam.ids.clone(), beam.cache.deep_copy()?)
            }
        };
        ids.push(token);
        next.push(Beam { ids, cache, score });
    }
    Ok(next)
}
