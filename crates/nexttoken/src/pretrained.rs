//! A model directory in the Hugging Face layout (config.json, model.safetensors, tokenizer) or a
//! GGUF file, loaded into one object that answers next-token questions.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::config::Config;
use crate::device::{device_from_name, DEFAULT_DEVICE};
use crate::dtype::WeightDtype;
use crate::error::{Error, Result};
use crate::generation::GenerationConfig;
use crate::network::{KvCache, Network, Positions};
use crate::scores::{most_likely, score_text, softmax_in_place, ScoredText, TokenScore};
use crate::source::ModelSource;
use crate::tokenizer::Tokenizer;
use crate::weights::Weights;

/// How to load a model; every field has a default.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// 'cpu', 'cuda' or 'metal'; default the CPU.
    pub device: Option<String>,
    /// What the weight matrices are held in; default the checkpoint's own type (f16 and bf16
    /// files stay 16-bit, everything else fp32; a GGUF file's matrices each in their own type:
    /// Q8_0 as q8, Q4_0 as q4, F16 as fp16, BF16 as bf16, F32 as fp32).
    pub dtype: Option<WeightDtype>,
    /// A directory for packed-cache files: the first load of a checkpoint writes its packed
    /// matrices there, later loads map them (`crate::packed_cache`, which says what it risks).
    /// Default none: every load reads and packs the checkpoint.
    pub packed_cache_dir: Option<PathBuf>,
}

pub struct Pretrained {
    pub network: Network,
    pub tokenizer: Arc<Tokenizer>,
    /// `generate`'s defaults from `generation_config.json` (or config.json's special tokens).
    pub generation_config: GenerationConfig,
    /// The most bytes one token stands for (`longest_token_bytes`), found at load.
    longest_token: OnceLock<usize>,
}

/// The special tokens the configs name must be tokens of both the model and the tokenizer: a
/// tokenizer that lacks the model's eos is another model's (a 10-token tokenizer.json on gpt2).
fn check_special_tokens(
    dir: &Path,
    config: &Config,
    generation: &GenerationConfig,
    tokenizer_size: usize,
) -> Result<()> {
    let named = [
        ("config.json", "bos_token_id", config.bos_token_id),
        ("config.json", "eos_token_id", config.eos_token_id),
    ]
    .into_iter()
    .chain([("generation_config.json", "bos_token_id", generation.bos_token_id)])
    .chain([("generation_config.json", "pad_token_id", generation.pad_token_id)])
    .chain(
        generation
            .eos_token_id
            .iter()
            .flatten()
            .map(|&id| ("generation_config.json", "eos_token_id", Some(id))),
    );
    for (file, name, id) in named {
        let Some(id) = id else { continue };
        if id as usize >= config.vocab_size {
            return Err(Error::invalid_file(
                &dir.join(file),
                format!("{name} {id} is outside the model's {} tokens", config.vocab_size),
            ));
        }
        if id as usize >= tokenizer_size {
            return Err(Error::invalid_file(
                &dir.join(file),
                format!("{name} {id} is not in the tokenizer, which has {tokenizer_size} tokens: the tokenizer does not match the model"),
            ));
        }
    }
    Ok(())
}

/// The most bytes one token of `tokenizer` stands for: its vocabulary entry's length in
/// characters, since byte-level BPE writes each byte as one character (`Ġ` for a space), and
/// special tokens match their text as it is.
fn longest_token_bytes(tokenizer: &Tokenizer) -> usize {
    let ids = 0..tokenizer.vocab_size() as u32;
    ids.filter_map(|id| tokenizer.id_to_token(id).ok())
        .map(|token| token.chars().count())
        .max()
        .unwrap_or(1)
        .max(1)
}

impl Pretrained {
    /// Loads the model directory `name_or_path` onto `device` in the checkpoint's dtype.
    pub fn load(name_or_path: &str, device: &str) -> Result<Self> {
        Self::load_with(name_or_path, &LoadOptions { device: Some(device.into()), ..LoadOptions::default() })
    }

    pub fn load_with(name_or_path: &str, options: &LoadOptions) -> Result<Self> {
        if let Some(reason) = crate::ops::simd::override_error() {
            return Err(Error::InvalidArg(reason.into()));
        }
        let device = device_from_name(options.device.as_deref().unwrap_or(DEFAULT_DEVICE))?;
        let dir = match crate::source::resolve(name_or_path)? {
            ModelSource::Dir(dir) => dir,
            ModelSource::Gguf(path) => return Self::load_gguf(&path, &device, options),
        };
        let config = Config::from_file(&dir.join("config.json"))?;
        let mut weights = Weights::from_dir(&dir, &device)?;
        if let Some(cache_dir) = &options.packed_cache_dir {
            weights.use_packed_cache(cache_dir, options.dtype);
        }
        let dtype = options.dtype.unwrap_or_else(|| weights.stored_dtype("wte.weight"));
        // The tokenizer (60-70 ms for GPT-2's 50,257 tokens and merges) is built on a thread of
        // its own while the weights load; the network's error, if both fail, is the one reported,
        // as when they loaded one after the other.
        let (network, (tokenizer, longest_token)) = std::thread::scope(|scope| {
            // With its longest token (`max_input_bytes`), which takes milliseconds: not on the
            // JS thread of a first call.
            let tokenizer = scope.spawn(|| {
                Tokenizer::from_dir(&dir).map(|tokenizer| {
                    let longest = longest_token_bytes(&tokenizer);
                    (tokenizer, longest)
                })
            });
            let network = Network::load(&mut weights, &config, &device, dtype);
            let tokenizer = tokenizer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            Ok::<_, Error>((network?, tokenizer?))
        })?;
        weights.finish_packed_cache();
        if tokenizer.vocab_size() > config.vocab_size {
            return Err(Error::ModelInvalid(format!(
                "the tokenizer has {} tokens but the model only {}",
                tokenizer.vocab_size(),
                config.vocab_size
            )));
        }
        let generation_config = GenerationConfig::from_dir(&dir, &config)?;
        check_special_tokens(&dir, &config, &generation_config, tokenizer.vocab_size())?;
        Ok(Pretrained {
            network,
            tokenizer: Arc::new(tokenizer),
            generation_config,
            longest_token: OnceLock::from(longest_token),
        })
    }

    /// The GGUF file `path`, its weight matrices in `dtype` or, by default, each in its own
    /// stored type; `generate`'s defaults from its bos and eos token ids.
    fn load_gguf(path: &Path, device: &candle_core::Device, options: &LoadOptions) -> Result<Self> {
        let crate::gguf::GgufModel { config, mut weights, tokenizer } = crate::gguf::load(path, device)?;
        if let Some(cache_dir) = &options.packed_cache_dir {
            weights.use_packed_cache(cache_dir, options.dtype);
        }
        let network = match options.dtype {
            Some(dtype) => Network::load(&mut weights, &config, device, dtype)?,
            None => Network::load_in_stored_types(&mut weights, &config, device)?,
        };
        weights.finish_packed_cache();
        if tokenizer.vocab_size() > config.vocab_size {
            return Err(Error::invalid_file(
                path,
                format!(
                    "the tokenizer has {} tokens but the token embeddings only {} rows",
                    tokenizer.vocab_size(),
                    config.vocab_size
                ),
            ));
        }
        let generation_config = GenerationConfig::from_model_config(&config);
        for (name, id) in [("bos", config.bos_token_id), ("eos", config.eos_token_id)] {
            if id.is_some_and(|id| id as usize >= tokenizer.vocab_size()) {
                return Err(Error::invalid_file(
                    path,
                    format!(
                        "tokenizer.ggml.{name}_token_id {} is not one of its {} tokens",
                        id.unwrap_or(0),
                        tokenizer.vocab_size()
                    ),
                ));
            }
        }
        let longest_token = OnceLock::from(longest_token_bytes(&tokenizer));
        Ok(Pretrained { network, tokenizer: Arc::new(tokenizer), generation_config, longest_token })
    }

    /// Makes the ids past the tokenizer's vocabulary impossible in `scores`: a model may pad its
    /// embedding matrix (50304 rows for 50257 tokens) and those rows are no token at all.
    pub fn mask_padding(&self, scores: &mut [f32]) {
        if let Some(padding) = scores.get_mut(self.tokenizer.vocab_size()..) {
            padding.fill(f32::NEG_INFINITY);
        }
    }

    /// Whether the model has ids the tokenizer does not (see `mask_padding`).
    pub fn is_padded(&self) -> bool {
        self.tokenizer.vocab_size() < self.config().vocab_size
    }

    pub fn config(&self) -> &Config {
        self.network.config()
    }

    /// The most bytes a text may have and still fit the context: `n_positions` tokens of the
    /// longest token's bytes (128 for GPT-2, so 128 KiB). Byte-level BPE gives every byte of a
    /// text to exactly one token, so a longer text cannot fit however it tokenizes: refusing it
    /// before tokenizing (which takes seconds for megabytes) changes no answer.
    pub fn max_input_bytes(&self) -> usize {
        let longest = *self.longest_token.get_or_init(|| longest_token_bytes(&self.tokenizer));
        self.config().n_positions.saturating_mul(longest)
    }

    /// `Error::InputTooLong` when a text of at least `len` bytes cannot fit the context.
    pub fn check_input_bytes(&self, len: usize) -> Result<()> {
        let max_bytes = self.max_input_bytes();
        if len <= max_bytes {
            return Ok(());
        }
        let n_positions = self.config().n_positions;
        Err(Error::InputTooLong { len, max_bytes, n_positions, token_bytes: max_bytes / n_positions.max(1) })
    }

    /// Token ids of a model input: refused by its byte length first (`check_input_bytes`).
    pub fn encode_input(&self, text: &str) -> Result<Vec<u32>> {
        self.check_input_bytes(text.len())?;
        self.tokenizer.encode(text)
    }

    /// Logits of `ids` as one flat row-major f32 vector: (vocab) for `Last`, (t * vocab) for `All`.
    pub fn logits(&self, ids: &[u32], positions: Positions) -> Result<Vec<f32>> {
        let logits = self.network.forward(ids, &mut KvCache::new(), positions)?;
        Ok(logits.flatten_all()?.to_vec1::<f32>()?)
    }

    /// Softmax of the last position's logits: the next-token distribution.
    pub fn probabilities(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let mut row = self.logits(ids, Positions::Last)?;
        softmax_in_place(&mut row);
        Ok(row)
    }

    /// How likely `ids` is: each token's log-probability given those before it, their sum, the
    /// loss (mean negative log-likelihood, as transformers' `labels=ids`) and the perplexity,
    /// with the `top_k` most likely tokens at each position. Needs at least two tokens.
    pub fn score(&self, ids: &[u32], top_k: usize) -> Result<ScoredText> {
        if ids.len() < 2 {
            return Err(Error::InvalidArg(format!(
                "score needs at least 2 tokens (the first one has no context); got {}",
                ids.len()
            )));
        }
        let logits = self.logits(ids, Positions::All)?;
        score_text(ids, &logits, top_k, &self.tokenizer)
    }

    /// The `k` most likely next tokens after `ids`, best first.
    pub fn top_k(&self, ids: &[u32], k: usize) -> Result<Vec<TokenScore>> {
        most_likely(&self.logits(ids, Positions::Last)?, k, &self.tokenizer)
    }
}
