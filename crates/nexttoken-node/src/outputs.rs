//! What the core returns, as JS receives it: plain objects, camelCased by napi.

use napi_derive::napi;
use nexttoken::{Config, Delivery, Output, Step};

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
