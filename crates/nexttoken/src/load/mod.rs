//! Loading a model, from a name or path to a `Pretrained`:
//!
//! - `resolve`: what a name or path names, a model directory or a GGUF file;
//! - `checkpoint_files` and `weights`: a directory's checkpoint (safetensors, sharded safetensors
//!   or `pytorch_model.bin`) as tensors under their Hugging Face names, read when the network
//!   takes them;
//! - `gguf_to_gpt2` and `gguf_tokenizer`: a GGUF file's config, tensors and tokenizer mapped to
//!   GPT-2's (the file format itself is `crate::gguf`'s, the pickle format `crate::pytorch`'s);
//! - `tokenizer_files`: the tokenizer from `tokenizer.json` or `vocab.json` + `merges.txt`;
//! - `packed_cache`: packed weight matrices kept in a file of their own for later loads;
//! - `pretrained`: all of these put together into a `Pretrained` (`Pretrained::load`), checked.

mod checkpoint_files;
mod gguf_to_gpt2;
mod gguf_tokenizer;
#[doc(hidden)]
pub mod packed_cache; // public for its fuzz target alone (`read_any`)
mod pretrained;
mod resolve;
mod tokenizer_files;
mod weights;

pub use gguf_to_gpt2::GgufModel;
pub use pretrained::LoadOptions;
pub use resolve::{resolve, ModelSource};
pub use weights::Weights;
