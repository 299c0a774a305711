//! What the core returns, as JS receives it: plain objects, camelCased by napi.

use napi_derive::napi;
use nexttoken::generation::EarlyStopping;
use nexttoken::{CallOptions, Config, Delivery, GenerateOptions, GenerationConfig, Output, Step};

/// `config.json`, camelCased.
#[napi(object)]
pub struct ModelConfig {
    pub model_type: String,
    pub n_layer: u32,
    pub n_head: u32,
    pub n_embd: u32,
    pub n_inner: u32,
    pub n_positions: u32,
    pub vocab_size: u32,
    pub layer_norm_epsilon: f64,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
}

/// What `generate` uses for each option the call leaves unset: the model directory's
/// `generation_config.json` (else config.json's special tokens) over transformers' defaults.
#[napi(object)]
pub struct GenerationDefaults {
    /// Null: 20 new tokens (transformers adds its default of 20 to the prompt length).
    pub max_length: Option<u32>,
    pub max_new_tokens: Option<u32>,
    pub do_sample: bool,
    pub temperature: f64,
    pub top_k: u32,
    pub top_p: f64,
    pub min_p: Option<f64>,
    pub repetition_penalty: f64,
    pub no_repeat_ngram_size: u32,
    pub eos_token_id: Vec<u32>,
    pub pad_token_id: Option<u32>,
    pub bos_token_id: Option<u32>,
    pub min_length: u32,
    pub min_new_tokens: Option<u32>,
    pub bad_words_ids: Vec<Vec<u32>>,
    #[napi(ts_type = "Array<[number[], number]>")]
    pub sequence_bias: Vec<(Vec<u32>, f64)>,
    pub suppress_tokens: Vec<u32>,
    pub begin_suppress_tokens: Vec<u32>,
    pub forced_eos_token_id: Vec<u32>,
    pub typical_p: f64,
    pub epsilon_cutoff: f64,
    pub eta_cutoff: f64,
    pub renormalize_logits: bool,
    pub stop_strings: Vec<String>,
    pub num_return_sequences: u32,
    pub num_beams: u32,
    pub length_penalty: f64,
    #[napi(ts_type = "boolean | 'never'")]
    pub early_stopping: napi::Either<bool, String>,
}

/// A candidate next token.
#[napi(object)]
pub struct TokenScore {
    pub id: u32,
    /// The token's text, as `tokenizer.decode([id])`.
    pub token: String,
    pub p: f64,
    pub logprob: f64,
}

#[napi(object)]
pub struct GenerateStep {
    pub id: u32,
    pub text: String,
    pub p: f64,
    pub logprob: f64,
    pub score: Option<f64>,
    pub alternatives: Option<Vec<TokenScore>>,
}

#[napi(object)]
pub struct GenerateSteps {
    pub steps: Vec<GenerateStep>,
    /// True once the generation has finished (see `result().stopReason`).
    pub done: bool,
}

#[napi(object)]
pub struct GenerateTimings {
    pub prompt_tokens: u32,
    pub cached_prompt_tokens: u32,
    pub prompt_ms: f64,
    pub generated_tokens: u32,
    pub generated_ms: f64,
}

#[napi(object)]
pub struct GenerateOutput {
    pub ids: Vec<u32>,
    pub new_ids: Vec<u32>,
    pub text: String,
    pub completion: String,
    #[napi(ts_type = "'eos' | 'length' | 'stop' | 'abort' | 'context' | null")]
    pub stop_reason: Option<String>,
    pub scores: Option<Vec<f64>>,
    pub sequence_score: Option<f64>,
    pub timings: GenerateTimings,
}

impl From<&Config> for ModelConfig {
    fn from(c: &Config) -> Self {
        ModelConfig {
            model_type: "gpt2".into(),
            n_layer: c.n_layer as u32,
            n_head: c.n_head as u32,
            n_embd: c.n_embd as u32,
            n_inner: c.n_inner as u32,
            n_positions: c.n_positions as u32,
            vocab_size: c.vocab_size as u32,
            layer_norm_epsilon: c.layer_norm_epsilon,
            bos_token_id: c.bos_token_id,
            eos_token_id: c.eos_token_id,
        }
    }
}

impl From<&GenerationConfig> for GenerationDefaults {
    /// The options a call that sets none runs with, as the core resolves them.
    fn from(model: &GenerationConfig) -> Self {
        let d = GenerateOptions::resolve(CallOptions::default(), model);
        // f32 options shown as the decimal they were written as (0.7, not 0.699999988079071).
        let number = |x: f32| x.to_string().parse::<f64>().unwrap_or(x as f64);
        GenerationDefaults {
            max_length: d.max_length.map(|n| n as u32),
            max_new_tokens: d.max_new_tokens.map(|n| n as u32),
            do_sample: d.do_sample,
            temperature: number(d.temperature),
            top_k: d.top_k as u32,
            top_p: number(d.top_p),
            min_p: d.min_p.map(number),
            repetition_penalty: number(d.repetition_penalty),
            no_repeat_ngram_size: d.no_repeat_ngram_size as u32,
            eos_token_id: d.eos_token_ids,
            pad_token_id: d.pad_token_id,
            bos_token_id: model.bos_token_id,
            min_length: d.min_length as u32,
            min_new_tokens: d.min_new_tokens.map(|n| n as u32),
            bad_words_ids: d.bad_words_ids,
            sequence_bias: d.sequence_bias.into_iter().map(|(ids, bias)| (ids, number(bias))).collect(),
            suppress_tokens: d.suppress_tokens,
            begin_suppress_tokens: d.begin_suppress_tokens,
            forced_eos_token_id: d.forced_eos_token_ids,
            typical_p: number(d.typical_p),
            epsilon_cutoff: number(d.epsilon_cutoff),
            eta_cutoff: number(d.eta_cutoff),
            renormalize_logits: d.renormalize_logits,
            stop_strings: d.stop_strings,
            num_return_sequences: d.num_return_sequences as u32,
            num_beams: d.num_beams as u32,
            length_penalty: number(d.length_penalty),
            early_stopping: match d.early_stopping {
                EarlyStopping::Done => napi::Either::A(true),
                EarlyStopping::Heuristic => napi::Either::A(false),
                EarlyStopping::Never => napi::Either::B("never".into()),
            },
        }
    }
}

impl From<nexttoken::TokenScore> for TokenScore {
    fn from(s: nexttoken::TokenScore) -> Self {
        TokenScore { id: s.id, token: s.token, p: s.p as f64, logprob: s.logprob as f64 }
    }
}

impl From<Step> for GenerateStep {
    fn from(step: Step) -> Self {
        let alternatives = match step.alternatives.is_empty() {
            true => None,
            false => Some(step.alternatives.into_iter().map(TokenScore::from).collect()),
        };
        GenerateStep {
            id: step.id,
            text: step.text,
            p: step.p as f64,
            logprob: step.logprob as f64,
            score: step.score.map(f64::from),
            alternatives,
        }
    }
}

impl From<Delivery> for GenerateSteps {
    fn from(delivery: Delivery) -> Self {
        GenerateSteps {
            steps: delivery.steps.into_iter().map(GenerateStep::from).collect(),
            done: delivery.done,
        }
    }
}

impl From<Output> for GenerateOutput {
    fn from(output: Output) -> Self {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        GenerateOutput {
            ids: output.ids,
            new_ids: output.new_ids,
            text: output.text,
            completion: output.completion,
            stop_reason: output.stop_reason.map(|r| r.as_str().to_string()),
            scores: output.scores.map(|scores| scores.into_iter().map(f64::from).collect()),
            sequence_score: output.sequence_score.map(f64::from),
            timings: GenerateTimings {
                prompt_tokens: output.timings.prompt_tokens as u32,
                cached_prompt_tokens: output.timings.cached_prompt_tokens as u32,
                prompt_ms: ms(output.timings.prompt),
                generated_tokens: output.timings.generated_tokens as u32,
                generated_ms: ms(output.timings.generated),
            },
        }
    }
}

/// One token of a scored text.
#[napi(object)]
pub struct ScoredToken {
    pub id: u32,
    pub token: String,
    /// Null for the first token, which has no context.
    pub logprob: Option<f64>,
    pub alternatives: Option<Vec<TokenScore>>,
}

#[napi(object)]
pub struct ScoredText {
    pub tokens: Vec<ScoredToken>,
    pub logprob: f64,
    pub loss: f64,
    pub perplexity: f64,
}

impl From<nexttoken::ScoredText> for ScoredText {
    fn from(scored: nexttoken::ScoredText) -> Self {
        let tokens = scored
            .tokens
            .into_iter()
            .map(|t| ScoredToken {
                id: t.id,
                token: t.token,
                logprob: t.logprob.map(f64::from),
                alternatives: match t.alternatives.is_empty() {
                    true => None,
                    false => Some(t.alternatives.into_iter().map(TokenScore::from).collect()),
                },
            })
            .collect();
        ScoredText { tokens, logprob: scored.logprob, loss: scored.loss, perplexity: scored.perplexity }
    }
}
