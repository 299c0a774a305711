//! One sequence's generation, driven one token at a time by the scheduler (a lone generation is
//! a batch of one) so that callers can stream, stop and abort between tokens. Each step feeds
//! only the tokens the KV cache has not seen.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::limits::Limits;
use super::options::{CallOptions, GenerateOptions};
use super::processors::{apply_processors, Context};
use super::sampler::{argmax, sample};
use super::stop_strings::StopStrings;
use super::text::TextStream;
use crate::error::{Error, Result};
use crate::network::KvCache;
use crate::pretrained::Pretrained;
use crate::scores::{log_sum_exp, most_likely, TokenScore};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The end-of-sequence token was generated (it is the last of `new_ids`).
    Eos,
    /// `max_new_tokens` / `max_length` reached.
    Length,
    /// The completion reached a `stop` string, or the text a `stop_strings` one.
    Stop,
    /// The caller aborted.
    Abort,
    /// The sequence filled the model's context (`n_positions`).
    Context,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Eos => "eos",
            StopReason::Length => "length",
            StopReason::Stop => "stop",
            StopReason::Abort => "abort",
            StopReason::Context => "context",
        }
    }
}

/// One generated token.
#[derive(Debug, Clone)]
pub struct Step {
    pub id: u32,
    /// Text that became safe to show with this token (may be empty, or span earlier tokens).
    pub text: String,
    /// Probability of the token under the model (softmax of the raw logits, before processors).
    pub p: f32,
    pub logprob: f32,
    /// With `output_scores`: the token's log-probability under the processed distribution (the
    /// one it was chosen from), as transformers' `compute_transition_scores(normalize_logits=True)`.
    pub score: Option<f32>,
    /// The most likely tokens at this step, under the model's distribution (as `p`), or the
    /// processed one with `processed_alternatives`.
    pub alternatives: Vec<TokenScore>,
}

/// Wall-clock times, batching included.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    pub prompt_tokens: usize,
    /// Prompt tokens whose keys and values came from an earlier prompt's (not computed again).
    pub cached_prompt_tokens: usize,
    /// From the first forward pass to the first new token (the prompt's pass yields it).
    pub prompt: Duration,
    pub generated_tokens: usize,
    /// From the first new token to the latest one.
    pub generated: Duration,
}

#[derive(Debug, Clone)]
pub struct Output {
    pub ids: Vec<u32>,
    pub new_ids: Vec<u32>,
    /// Prompt + completion, as `tokenizer.decode(output[0])` (cut before a stop string).
    pub text: String,
    pub completion: String,
    pub stop_reason: Option<StopReason>,
    /// With `output_scores`: every step's `score`.
    pub scores: Option<Vec<f32>>,
    /// Beam search: the sequence's score, as transformers' `sequences_scores`.
    pub sequence_score: Option<f32>,
    pub timings: Timings,
}

pub struct Generation {
    pretrained: Arc<Pretrained>,
    options: GenerateOptions,
    budget: usize,
    ids: Vec<u32>,
    prompt_len: usize,
    cache: KvCache,
    rng: StdRng,
    text: TextStream,
    stop_strings: StopStrings,
    /// See `Timings::cached_prompt_tokens`.
    cached_prompt_tokens: usize,
    /// With `output_scores`: each step's score.
    scores: Vec<f32>,
    stop_reason: Option<StopReason>,
    /// When the first forward pass began, and when the first and the latest tokens came out.
    started: Option<Instant>,
    first_token_at: Option<Instant>,
    last_token_at: Option<Instant>,
}

impl Generation {
    /// A generation of `prompt` with the call's `options` over the model's generation config.
    /// An empty prompt starts from the BOS token, as transformers' `generate()` without input.
    pub fn new(pretrained: Arc<Pretrained>, prompt: Vec<u32>, options: CallOptions) -> Result<Self> {
        Self::with_cache(pretrained, prompt, KvCache::new(), options)
    }

    /// A generation of `prompt` whose first `cache.len()` tokens the cache already holds (a
    /// session's): only the rest are fed.
    pub fn with_cache(
        pretrained: Arc<Pretrained>,
        prompt: Vec<u32>,
        cache: KvCache,
        options: CallOptions,
    ) -> Result<Self> {
        let options = GenerateOptions::resolve(options, &pretrained.generation_config);
        let config = pretrained.config();
        options.validate(config.vocab_size)?;
        if options.num_beams > 1 {
            // One sequence at a time cannot be a beam search: that is `beam_search`'s.
            return Err(Error::InvalidArg(format!(
                "numBeams {} asks for beam search, which gives whole sequences: use generate (not stream or a session)",
                options.num_beams
            )));
        }
        let prompt = match (prompt.is_empty(), pretrained.generation_config.bos_token_id) {
            (true, Some(bos)) => vec![bos],
            (true, None) => {
                return Err(Error::InvalidArg(
                    "input is empty and the model has no bos_token_id to start from".into(),
                ))
            }
            (false, _) => prompt,
        };
        pretrained.network.check_input(&prompt, 0)?;
        if cache.len() >= prompt.len() {
            return Err(Error::Internal("a generation's cache must leave a prompt token to feed".into()));
        }
        Limits::HARD.admit(&options, 1, prompt.len(), config, 1)?;
        let budget = options.new_token_budget(prompt.len(), config.n_positions)?;
        let rng = match options.rng_seed() {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        let text = TextStream::new(pretrained.tokenizer.clone(), options.stop.clone());
        let stop_strings = StopStrings::new(options.stop_strings.clone());
        Ok(Generation {
            budget,
            prompt_len: prompt.len(),
            ids: prompt,
            cache,
            rng,
            text,
            stop_strings,
            cached_prompt_tokens: 0,
            scores: Vec::new(),
            stop_reason: None,
            started: None,
            first_token_at: None,
            last_token_at: None,
            options,
            pretrained,
        })
    }

    /// The prompt (the tokens before the first generated one).
    pub fn prompt(&self) -> &[u32] {
        &self.ids[..self.prompt_len]
    }

    /// Whether the cache has yet to take in the whole prompt.
    pub fn is_prefilling(&self) -> bool {
        self.cache.len() < self.prompt_len
    }

    /// Starts from `cache`, which holds a prefix of the prompt (computed for another request),
    /// if nothing has been fed yet.
    pub fn adopt_prefix(&mut self, cache: KvCache) {
        if self.cache.is_empty() && cache.len() < self.prompt_len {
            self.cached_prompt_tokens = cache.len();
            self.cache = cache;
        }
    }

    /// Prompt tokens taken from a stored prefix (`adopt_prefix`).
    pub fn cached_prompt_tokens(&self) -> usize {
        self.cached_prompt_tokens
    }

    /// The prompt and its cache, at the moment the cache holds exactly the prompt.
    pub fn prompt_kv(&self) -> Option<(&[u32], &KvCache)> {
        (self.cache.len() == self.prompt_len).then(|| (self.prompt(), &self.cache))
    }

    /// For another generation of the same `prompt` (a fork): a copy of this one's cache of it up
    /// to its last token, once it holds the whole prompt (the fork feeds that token itself, for
    /// its first logits, as a session's generation does). None for another prompt, a one-token
    /// prompt, or one not read yet.
    pub fn copy_of_prompt_kv(&self, prompt: &[u32]) -> Option<Result<KvCache>> {
        if prompt.len() < 2 || self.prompt() != prompt || self.is_prefilling() {
            return None;
        }
        Some(self.cache.deep_copy().map(|mut cache| {
            cache.truncate(prompt.len() - 1);
            cache
        }))
    }

    pub fn is_finished(&self) -> bool {
        self.stop_reason.is_some()
    }

    /// Stops the generation (if still running) with `StopReason::Abort`.
    pub fn abort(&mut self) {
        self.stop_reason.get_or_insert(StopReason::Abort);
    }

    /// Ends the generation if a limit leaves no room for another token.
    fn check_limits(&mut self) {
        if self.stop_reason.is_none() {
            if self.new_ids().len() >= self.budget {
                self.stop_reason = Some(StopReason::Length);
            } else if self.ids.len() >= self.pretrained.config().n_positions {
                self.stop_reason = Some(StopReason::Context);
            }
        }
    }

    /// The tokens the next forward pass must feed for this sequence (at most `max_tokens`) and
    /// the cache they extend, or None once finished. A prompt longer than `max_tokens` is fed
    /// in chunks; only the pass that feeds its last token yields logits for a new token.
    pub fn next_input(&mut self, max_tokens: usize) -> Option<(&[u32], &mut KvCache)> {
        self.check_limits();
        if self.stop_reason.is_some() {
            return None;
        }
        self.started.get_or_insert_with(Instant::now);
        let start = self.cache.len();
        let end = self.ids.len().min(start.saturating_add(max_tokens.max(1)));
        Some((&self.ids[start..end], &mut self.cache))
    }

    /// True when the cache holds every token: the last forward pass predicts the next one.
    pub fn wants_logits(&self) -> bool {
        self.cache.len() == self.ids.len()
    }

    /// Where the sequence stands, for the processors.
    fn context(&self) -> Context<'_> {
        let new_tokens = self.new_ids().len();
        Context {
            ids: &self.ids,
            prompt_width: self.options.prompt_width(self.prompt_len),
            new_tokens,
            last: new_tokens + 1 >= self.budget || self.ids.len() + 1 >= self.pretrained.config().n_positions,
        }
    }

    /// Chooses the next token from `logits`, the raw scores of the last fed position.
    pub fn accept_logits(&mut self, logits: &[f32]) -> Result<Step> {
        let lse = log_sum_exp(logits);
        // Plain greedy decoding reads the logits as they are: no copy of the vocabulary-sized row.
        let scores: Cow<[f32]> = match self.options.processes_scores() || self.pretrained.is_padded() {
            true => {
                let mut scores = logits.to_vec();
                self.pretrained.mask_padding(&mut scores);
                apply_processors(&mut scores, &self.context(), &self.options);
                Cow::Owned(scores)
            }
            false => Cow::Borrowed(logits),
        };
        // Processors may remove every token; the raw logits never do.
        if matches!(scores, Cow::Owned(_)) && crate::ops::max_value(&scores) == f32::NEG_INFINITY {
            return Err(Error::InvalidArg(format!(
                "the options filtered out every token at step {}: loosen the bans, biases or cutoffs",
                self.new_ids().len() + 1
            )));
        }
        let id = if self.options.do_sample { sample(&scores, &mut self.rng) } else { argmax(&scores) };
        let logprob = logits[id as usize] - lse;
        // The processed distribution's normaliser only when asked for (one more pass over the row).
        let score = self.options.output_scores.then(|| match &scores {
            Cow::Borrowed(_) => logprob,
            Cow::Owned(processed) => processed[id as usize] - log_sum_exp(processed),
        });
        self.scores.extend(score);
        let alternatives = match (self.options.top_alternatives, self.options.processed_alternatives) {
            (0, _) => Vec::new(),
            (k, false) => most_likely(logits, k, &self.pretrained.tokenizer)?,
            (k, true) => most_likely(&scores, k, &self.pretrained.tokenizer)?,
        };

        self.ids.push(id);
        let mut text = self.text.push(id)?;
        self.stop_reason = if self.options.eos_token_id.contains(&id) {
            Some(StopReason::Eos)
        } else if self.text.stopped()
            || self.stop_strings.completed_by_last(&self.pretrained.tokenizer, &self.ids)?
        {
            Some(StopReason::Stop)
        } else if self.new_ids().len() >= self.budget {
            Some(StopReason::Length)
        } else if self.ids.len() >= self.pretrained.config().n_positions {
            Some(StopReason::Context)
        } else {
            None
        };
        if self.stop_reason.is_some() {
            text.push_str(&self.text.flush());
        }

        let now = Instant::now();
        self.first_token_at.get_or_insert(now);
        self.last_token_at = Some(now);
        Ok(Step { id, text, p: logprob.exp(), logprob, score, alternatives })
    }

    pub fn new_ids(&self) -> &[u32] {
        &self.ids[self.prompt_len..]
    }

    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stop_reason
    }

    /// The result so far (final once `is_finished`).
    pub fn output(&self) -> Result<Output> {
        let tokenizer = &self.pretrained.tokenizer;
        let completion = self.text.completion().to_string();
        let text = if self.text.stopped() {
            tokenizer.decode(&self.ids[..self.prompt_len])? + &completion
        } else {
            tokenizer.decode(&self.ids)?
        };
        Ok(Output {
            ids: self.ids.clone(),
            new_ids: self.new_ids().to_vec(),
            text,
            completion,
            stop_reason: self.stop_reason,
            scores: self.options.output_scores.then(|| self.scores.clone()),
            sequence_score: None,
            timings: self.timings(),
        })
    }

    fn timings(&self) -> Timings {
        let since = |from: Option<Instant>, to: Option<Instant>| match (from, to) {
            (Some(from), Some(to)) => to.duration_since(from),
            _ => Duration::ZERO,
        };
        Timings {
            prompt_tokens: self.prompt_len,
            cached_prompt_tokens: self.cached_prompt_tokens,
            prompt: since(self.started, self.first_token_at),
            generated_tokens: self.new_ids().len(),
            generated: since(self.first_token_at, self.last_token_at),
        }
    }
}
