//! The GPT-2 network on candle, in the order of nanoGPT's `model.py`: Conv1D, Attention, Mlp,
//! Block, Network. Field names follow the checkpoint. The KV cache lives outside the model so that
//! one loaded model can serve many sequences at once.
//!
//! A forward pass takes a ragged batch: several sequences, each with its own cache and its own
//! number of new tokens. Their new tokens are stacked as rows of one matrix for every dense layer
//! (so the weights are read once for all of them), and split per sequence only for attention.
//! No padding is needed, and a sequence's numbers do not depend on what else is in the batch.
//!
//! Two backends run it (`ops::Backend`, chosen at load): the CPU's, with packed weights, a
//! host KV cache and fused attention, and the device one (`device`), with tensors in their own
//! dtype, preallocated KV slots (`kv_slots`) and one attention call for all decoding sequences.
//! They share everything else here.

mod device;
mod kv_cache;
mod kv_slots;

use candle_core::quantized::QMatMul;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::LayerNorm;

use self::device::{DeviceParts, DevicePass, PassSequence};
pub use self::kv_cache::KvCache;
use crate::config::{Activation, Config};
use crate::dtype::WeightDtype;
use crate::error::{Error, Result};
use crate::load::Weights;
use crate::ops::{attention, linear, Backend, Epilogue, Weight};

/// Hugging Face's GPT-2 `Conv1D`: a linear layer whose weight is stored `[in, out]`, which is
/// already the layout `x @ W` wants, so no transpose is needed at load or at run time.
struct Conv1D {
    weight: Weight, // (in, out)
    bias: Tensor,   // (out)
}

impl Conv1D {
    fn load(w: &mut Loader, prefix: &str, (n_in, n_out): (usize, usize)) -> Result<Self> {
        Ok(Conv1D {
            weight: w.matrix(&format!("{prefix}.weight"), (n_in, n_out), false)?,
            bias: w.vector(&format!("{prefix}.bias"), &[n_out])?,
        })
    }

    fn forward(&self, x: &Tensor, epilogue: Epilogue) -> candle_core::Result<Tensor> {
        linear(x, &self.weight, Some(&self.bias), epilogue) // (rows, out)
    }
}

fn layer_norm(w: &mut Loader, prefix: &str, cfg: &Config) -> Result<LayerNorm> {
    Ok(LayerNorm::new(
        w.vector(&format!("{prefix}.weight"), &[cfg.n_embd])?,
        w.vector(&format!("{prefix}.bias"), &[cfg.n_embd])?,
        cfg.layer_norm_epsilon,
    ))
}

struct Attention {
    c_attn: Conv1D,
    c_proj: Conv1D,
    n_head: usize,
    head_size: usize,
}

impl Attention {
    fn load(w: &mut Loader, prefix: &str, cfg: &Config) -> Result<Self> {
        Ok(Attention {
            c_attn: Conv1D::load(w, &format!("{prefix}.c_attn"), (cfg.n_embd, 3 * cfg.n_embd))?,
            c_proj: Conv1D::load(w, &format!("{prefix}.c_proj"), (cfg.n_embd, cfg.n_embd))?,
            n_head: cfg.n_head,
            head_size: cfg.head_size(),
        })
    }

    /// `residual` plus the causal self-attention of each sequence's new rows of `x` (rows, c)
    /// over its cache.
    fn forward(
        &self,
        x: &Tensor,
        residual: &Tensor,
        pass: &mut Pass,
        layer: usize,
    ) -> candle_core::Result<Tensor> {
        let c = x.dim(1)?;
        // (rows, 3c): c_attn packs q, k and v as three contiguous blocks of c columns (not per
        // head).
        let qkv = self.c_attn.forward(x, Epilogue::None)?;
        let q = qkv.narrow(1, 0, c)?;
        let scale = 1.0 / (self.head_size as f64).sqrt();
        let y = match pass {
            Pass::Host(batch) => {
                let (k, v) = (qkv.narrow(1, c, c)?, qkv.narrow(1, 2 * c, c)?);
                let mut ys = Vec::with_capacity(batch.len());
                for seq in batch.iter_mut() {
                    let (row, t) = (seq.row, seq.ids.len());
                    let new_kv = (&k.narrow(0, row, t)?, &v.narrow(0, row, t)?);
                    let (k, v) = seq.cache.append(layer, new_kv, self.n_head)?; // (1, nh, T, hs)
                                                                                // This sequence's (t, c).
                    ys.push(attention(&q.narrow(0, row, t)?, &k, &v, scale as f32)?);
                }
                Tensor::cat(&ys, 0)?
            }
            Pass::Device(pass) => {
                pass.write(layer, &qkv.narrow(1, c, 2 * c)?)?;
                pass.attend(layer, &q, self.n_head, scale)?
            }
        };
        self.c_proj.forward(&y, Epilogue::Residual(residual))
    }
}

struct Mlp {
    c_fc: Conv1D,
    c_proj: Conv1D,
    activation: Activation,
}

impl Mlp {
    fn load(w: &mut Loader, prefix: &str, cfg: &Config) -> Result<Self> {
        Ok(Mlp {
            c_fc: Conv1D::load(w, &format!("{prefix}.c_fc"), (cfg.n_embd, cfg.n_inner))?,
            c_proj: Conv1D::load(w, &format!("{prefix}.c_proj"), (cfg.n_inner, cfg.n_embd))?,
            activation: cfg.activation,
        })
    }

    /// `residual` plus the MLP of `x`.
    fn forward(&self, x: &Tensor, residual: &Tensor) -> candle_core::Result<Tensor> {
        let h = match self.activation {
            Activation::GeluTanh => self.c_fc.forward(x, Epilogue::Gelu)?, // the tanh form (`gelu_new`)
            Activation::GeluErf => self.c_fc.forward(x, Epilogue::None)?.gelu_erf()?,
            Activation::Relu => self.c_fc.forward(x, Epilogue::None)?.relu()?,
        };
        self.c_proj.forward(&h, Epilogue::Residual(residual))
    }
}

struct Block {
    ln_1: LayerNorm,
    attn: Attention,
    ln_2: LayerNorm,
    mlp: Mlp,
}

impl Block {
    fn load(w: &mut Loader, layer: usize, cfg: &Config) -> Result<Self> {
        let prefix = format!("h.{layer}");
        Ok(Block {
            ln_1: layer_norm(w, &format!("{prefix}.ln_1"), cfg)?,
            attn: Attention::load(w, &format!("{prefix}.attn"), cfg)?,
            ln_2: layer_norm(w, &format!("{prefix}.ln_2"), cfg)?,
            mlp: Mlp::load(w, &format!("{prefix}.mlp"), cfg)?,
        })
    }

    fn forward(&self, x: &Tensor, pass: &mut Pass, layer: usize) -> candle_core::Result<Tensor> {
        let x = self.attn.forward(&self.ln_1.forward(x)?, x, pass, layer)?;
        self.mlp.forward(&self.ln_2.forward(&x)?, &x)
    }
}

/// Takes a network's tensors from a checkpoint for `backend`: weight matrices in `dtype` (None:
/// each its own stored type), everything else in the activations' dtype (f32 on the CPU
/// backend; the weights' one dtype on the device backend).
struct Loader<'w> {
    w: &'w mut Weights,
    backend: Backend,
    dtype: Option<WeightDtype>,
    activations: DType,
}

impl Loader<'_> {
    /// The weight `name`, stored `shape`, for `linear` (`transposed`: used as `x @ w^T`).
    /// Packed straight from the file when the CPU kernels pack, so the model is never held twice.
    fn matrix(&mut self, name: &str, shape: (usize, usize), transposed: bool) -> Result<Weight> {
        let dtype = self.dtype.unwrap_or_else(|| self.w.stored_dtype(name));
        check_dtype(self.backend, self.w.device(), dtype)?;
        Ok(match (self.backend, Weight::packs(self.backend, dtype)) {
            (_, true) => Weight::Packed(self.w.take_packed(name, shape, dtype, transposed)?),
            (Backend::Cpu, false) => Weight::tensor(self.w.take(name, &[shape.0, shape.1])?, transposed)?,
            (Backend::Device, false) if dtype.is_quantized() => {
                let quantized = self.w.take_quantized(name, shape, dtype, transposed)?;
                Weight::Quantized(QMatMul::from_qtensor(quantized)?)
            }
            (Backend::Device, false) => Weight::device(self.vector(name, &[shape.0, shape.1])?, transposed)?,
        })
    }

    /// The tensor `name` of `shape` in the activations' dtype (biases, norms, positions).
    fn vector(&mut self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.w.take_in(name, shape, self.activations)
    }
}

/// Fails for a `dtype` that `backend` on `device` does not hold: the CPU backend holds every one
/// (packed), the device backend every one but bf16 on the CPU (its tests), which candle's CPU
/// matmul lacks.
fn check_dtype(backend: Backend, device: &Device, dtype: WeightDtype) -> Result<()> {
    match backend == Backend::Device && device.is_cpu() && dtype == WeightDtype::Bf16 {
        true => Err(Error::InvalidArg(
            "dtype bf16 runs on the CPU backend or a GPU: candle's CPU matmul has no bf16".into(),
        )),
        false => Ok(()),
    }
}

/// The dtype the device backend computes in for weights held in `dtype` (f32 for q8 and q4,
/// whose quantized kernels take f32 activations).
fn activations_of(dtype: WeightDtype) -> DType {
    match dtype {
        WeightDtype::F16 => DType::F16,
        WeightDtype::Bf16 => DType::BF16,
        _ => DType::F32,
    }
}

/// Which positions of the input to compute logits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Positions {
    /// Only the last one: what predicting the next token needs (skips vocab-sized work).
    Last,
    All,
}

pub struct Network {
    /// The token embeddings (vocab, c), kept only as the output head tied to them: embedding a
    /// token reads its row back from the head.
    head: Weight,
    wpe: Tensor, // (n_positions, c)
    h: Vec<Block>,
    ln_f: LayerNorm,
    config: Config,
    dtype: WeightDtype,
    device: Device,
    /// The device backend's KV slots and constants; None on the CPU backend.
    device_parts: Option<DeviceParts>,
}

impl Network {
    /// The network in `w` for `backend`, its weight matrices held in `dtype`.
    pub fn load(w: &mut Weights, config: &Config, backend: Backend, dtype: WeightDtype) -> Result<Self> {
        check_dtype(backend, w.device(), dtype)?;
        Self::load_as(w, config, backend, Some(dtype))
    }

    /// The network in `w` for `backend`, each weight matrix held in its own stored type (a GGUF
    /// file's Q8_0 as q8, Q4_0 as q4, F16 as fp16...). `dtype()` then reports the token
    /// embeddings' type: the largest matrix, and the one type of every matrix in a file written
    /// in one type. (The device backend holds them all in that type.)
    pub fn load_in_stored_types(w: &mut Weights, config: &Config, backend: Backend) -> Result<Self> {
        Self::load_as(w, config, backend, None)
    }

    fn load_as(
        w: &mut Weights,
        config: &Config,
        backend: Backend,
        dtype: Option<WeightDtype>,
    ) -> Result<Self> {
        let reported = dtype.unwrap_or_else(|| w.stored_dtype("wte.weight"));
        let device = w.device().clone();
        let (dtype, activations) = match backend {
            Backend::Cpu => (dtype, DType::F32),
            // One dtype for every tensor, as a model moved to a GPU in PyTorch has.
            Backend::Device => (Some(reported), activations_of(reported)),
        };
        let device_parts = match backend {
            Backend::Cpu => None,
            Backend::Device => Some(DeviceParts::new(config, activations, &device)?),
        };
        let mut w = Loader { w, backend, dtype, activations };
        let h = (0..config.n_layer).map(|layer| Block::load(&mut w, layer, config)).collect::<Result<_>>()?;
        Ok(Network {
            // The output head is tied to the token embeddings wte (vocab, c).
            head: w.matrix("wte.weight", (config.vocab_size, config.n_embd), true)?,
            wpe: w.vector("wpe.weight", &[config.n_positions, config.n_embd])?,
            h,
            ln_f: layer_norm(&mut w, "ln_f", config)?,
            config: config.clone(),
            dtype: reported,
            device,
            device_parts,
        })
    }

    /// Which backend runs the network.
    pub fn backend(&self) -> Backend {
        match self.device_parts {
            None => Backend::Cpu,
            Some(_) => Backend::Device,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The dtype the weight matrices are held in.
    pub fn dtype(&self) -> WeightDtype {
        self.dtype
    }

    /// Checks that `ids` can be appended to a cache holding `past` positions.
    pub fn check_input(&self, ids: &[u32], past: usize) -> Result<()> {
        if ids.is_empty() {
            return Err(Error::InvalidArg("input is empty: give at least one token".into()));
        }
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= self.config.vocab_size) {
            return Err(Error::TokenOutOfRange { id, vocab_size: self.config.vocab_size });
        }
        if past + ids.len() > self.config.n_positions {
            return Err(Error::ContextOverflow {
                len: past + ids.len(),
                n_positions: self.config.n_positions,
            });
        }
        Ok(())
    }

    /// Runs one sequence's new tokens `ids` after the `cache.len()` positions already in `cache`
    /// and returns the logits as (positions, vocab) in f32.
    pub fn forward(&self, ids: &[u32], cache: &mut KvCache, positions: Positions) -> Result<Tensor> {
        in_pool(|| self.forward_in_pool(ids, cache, positions))
    }

    fn forward_in_pool(&self, ids: &[u32], cache: &mut KvCache, positions: Positions) -> Result<Tensor> {
        let x = self.hidden_states(&mut [Sequence { ids, cache, row: 0 }])?.rows; // (t, c)
        let x = match positions {
            Positions::Last => x.narrow(0, ids.len() - 1, 1)?,
            Positions::All => x,
        };
        self.lm_head(&x)
    }

    /// Runs several sequences in one pass, each `ids` after the positions in its `cache`, and
    /// returns the logits of each one's last new position: (sequences, vocab).
    pub fn forward_batch(&self, batch: &mut [(&[u32], &mut KvCache)]) -> Result<Tensor> {
        in_pool(|| self.forward_batch_in_pool(batch))
    }

    fn forward_batch_in_pool(&self, batch: &mut [(&[u32], &mut KvCache)]) -> Result<Tensor> {
        let mut row = 0;
        let mut sequences: Vec<Sequence> = batch
            .iter_mut()
            .map(|(ids, cache)| {
                let seq = Sequence { ids, cache, row };
                row += ids.len();
                seq
            })
            .collect();
        let hidden = self.hidden_states(&mut sequences)?;
        self.lm_head(&hidden.rows.index_select(&hidden.last_rows, 0)?)
    }

    /// The final hidden states (before `ln_f`) of every new token, stacked: (rows, c).
    fn hidden_states(&self, batch: &mut [Sequence]) -> Result<Hidden> {
        for seq in batch.iter() {
            self.check_input(seq.ids, seq.cache.len())?;
        }
        let hidden = match &self.device_parts {
            None => self.host_hidden_states(batch)?,
            Some(parts) => self.device_hidden_states(parts, batch)?,
        };
        for seq in batch.iter_mut() {
            seq.cache.advance(seq.ids.len());
        }
        Ok(hidden)
    }

    /// The CPU backend's: each sequence's embeddings gathered on the host.
    fn host_hidden_states(&self, batch: &mut [Sequence]) -> Result<Hidden> {
        let mut embeddings = Vec::with_capacity(batch.len());
        for seq in batch.iter() {
            let tok = self.head.transposed_rows(seq.ids, &self.device)?; // (t, c)
            let pos = self.wpe.narrow(0, seq.cache.len(), seq.ids.len())?; // (t, c)
            embeddings.push((tok + pos)?);
        }
        let last_rows: Vec<u32> = batch.iter().map(|s| (s.row + s.ids.len() - 1) as u32).collect();
        let last_rows = Tensor::new(last_rows, &self.device)?;
        let mut x = Tensor::cat(&embeddings, 0)?; // (rows, c)
        let mut pass = Pass::Host(batch);
        for (layer, block) in self.h.iter().enumerate() {
            x = block.forward(&x, &mut pass, layer)?;
        }
        Ok(Hidden { rows: x, last_rows })
    }

    /// The device backend's: every index the pass needs uploaded once, the embeddings gathered
    /// on the device.
    fn device_hidden_states(&self, parts: &DeviceParts, batch: &mut [Sequence]) -> Result<Hidden> {
        let mut slots = Vec::with_capacity(batch.len());
        for seq in batch.iter_mut() {
            let past = seq.cache.len();
            slots.push((seq.ids, past, seq.cache.slot(&parts.slots)?));
        }
        let sequences: Vec<PassSequence> =
            slots.iter().map(|&(ids, past, slot)| PassSequence { ids, past, slot }).collect();
        let pass = DevicePass::new(parts, &sequences, &self.device)?;
        let tok = self.head.transposed_rows_of(&pass.ids)?; // (rows, c)
        let mut x = (tok + self.wpe.index_select(&pass.positions, 0)?)?;
        let mut layers = Pass::Device(&pass);
        for (layer, block) in self.h.iter().enumerate() {
            x = block.forward(&x, &mut layers, layer)?;
        }
        Ok(Hidden { rows: x, last_rows: pass.last_rows.clone() })
    }

    /// Logits of hidden states (rows, c) in f32: ln_f, then the head tied to the token embeddings.
    fn lm_head(&self, x: &Tensor) -> Result<Tensor> {
        let logits = linear(&self.ln_f.forward(x)?, &self.head, None, Epilogue::None)?; // (rows, vocab)
        Ok(logits.to_dtype(DType::F32)?)
    }
}

/// Runs `pass` on a thread of the compute pool, not on the caller's. Every operation of a pass
/// splits its work across the pool; from inside it, the first part starts at once on this thread,
/// where a caller outside would hand each operation over and sleep until it is done (two thread
/// switches per operation, about 60 of them per token).
fn in_pool<R: Send>(pass: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| pass())
}

/// One sequence's part of a forward pass: its new tokens, its cache, and where its rows start
/// in the stacked hidden states.
struct Sequence<'a> {
    ids: &'a [u32],
    cache: &'a mut KvCache,
    row: usize,
}

/// What a pass gives each layer to attend with: the CPU backend's sequences, or the device
/// backend's pass.
enum Pass<'p, 'a> {
    Host(&'p mut [Sequence<'a>]),
    Device(&'p DevicePass<'p>),
}

/// A pass's final hidden states (rows, c) and each sequence's last row among them.
struct Hidden {
    rows: Tensor,
    last_rows: Tensor,
}
