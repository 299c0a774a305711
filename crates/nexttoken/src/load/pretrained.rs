//! A model directory in the Hugging Face layout (config.json, a checkpoint, tokenizer files) or a
//! GGUF file, loaded into a `Pretrained`: the network from its weights, the tokenizer on a thread
//! of its own meanwhile, `generate`'s defaults, and the checks that they belong together.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use candle_core::Device;

use super::gguf_to_gpt2::GgufModel;
use super::resolve::{resolve, ModelSource};
use super::weights::Weights;
use crate::config::Config;
use crate::device::{device_from_name, DEFAULT_DEVICE};
use crate::dtype::WeightDtype;
use crate::error::{Error, Result};
use crate::generation::GenerationConfig;
use crate::network::Network;
use crate::ops::{backend, Backend};
use crate::pretrained::{longest_token_bytes, Pretrained};
use crate::tokenizer::Tokenizer;

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
    /// matrices there, later loads map them (`packed_cache`, which says what it risks).
    /// Default none: every load reads and packs the checkpoint.
    pub packed_cache_dir: Option<PathBuf>,
    /// Which backend runs the model (`Backend`); default the device's own. Only the CPU runs
    /// both: asking for the device backend there is how its tensor code is tested without a GPU.
    #[doc(hidden)]
    pub backend: Option<Backend>,
}

impl LoadOptions {
    /// Where the model runs: `device`, or the default.
    pub fn device_name(&self) -> &str {
        self.device.as_deref().unwrap_or(DEFAULT_DEVICE)
    }
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

impl Pretrained {
    /// Loads the model directory `name_or_path` onto `device` in the checkpoint's dtype.
    pub fn load(name_or_path: &str, device: &str) -> Result<Self> {
        Self::load_with(name_or_path, &LoadOptions { device: Some(device.into()), ..LoadOptions::default() })
    }

    pub fn load_with(name_or_path: &str, options: &LoadOptions) -> Result<Self> {
        if let Some(reason) = crate::ops::simd::override_error() {
            return Err(Error::InvalidArg(reason.into()));
        }
        let device = device_from_name(options.device_name())?;
        let backend = backend(&device, options.backend).map_err(Error::InvalidArg)?;
        let dir = match resolve(name_or_path)? {
            ModelSource::Dir(dir) => dir,
            ModelSource::Gguf(path) => return Self::load_gguf(&path, &device, backend, options),
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
            let network = Network::load(&mut weights, &config, backend, dtype);
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
    fn load_gguf(path: &Path, device: &Device, backend: Backend, options: &LoadOptions) -> Result<Self> {
        let GgufModel { config, mut weights, tokenizer } = GgufModel::open(path, device)?;
        if let Some(cache_dir) = &options.packed_cache_dir {
            weights.use_packed_cache(cache_dir, options.dtype);
        }
        let network = match options.dtype {
            Some(dtype) => Network::load(&mut weights, &config, backend, dtype)?,
            None => Network::load_in_stored_types(&mut weights, &config, backend)?,
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
}
