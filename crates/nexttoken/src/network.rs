//! The GPT-2 network on candle, in the order of nanoGPT's `model.py`: Conv1D, Attention, Mlp,
//! Block, Network. Field names follow the checkpoint. The KV cache lives outside the model so that
//! one loaded model can serve many sequences at once.
//!
//! A forward pass takes a ragged batch: several sequences, each with its own cache and its own
//! number of new tokens. Their new tokens are stacked as rows of one matrix for every dense layer
//! (so the weights are read once for all of them), and split per sequence only for attention.
//! No padding is needed, and a sequence's numbers do not depend on what else is in the batch.

use candle_core::{Device, Module, Tensor};
use candle_nn::LayerNorm;

use crate::config::{Activation, Config};
use crate::dtype::WeightDtype;
use crate::error::{Error, Result};
use crate::load::Weights;
use crate::ops::{attention, linear, write_heads, Epilogue, Weight};

/// Hugging Face's GPT-2 `Conv1D`: a linear layer whose weight is stored `[in, out]`, which is
/// already the layout `x @ W` wants, so no transpose is needed at load or at run time.
struct Conv1D {
    weight: Weight, // (in, out)
    bias: Tensor,   // (out)
}

impl Conv1D {
    fn load(
        w: &mut Weights,
        prefix: &str,
        (n_in, n_out): (usize, usize),
        dtype: Option<WeightDtype>,
    ) -> Result<Self> {
        Ok(Conv1D {
            weight: linear_weight(w, &format!("{prefix}.weight"), (n_in, n_out), false, dtype)?,
            bias: w.take(&format!("{prefix}.bias"), &[n_out])?,
        })
    }

    fn forward(&self, x: &Tensor, epilogue: Epilogue) -> candle_core::Result<Tensor> {
        linear(x, &self.weight, Some(&self.bias), epilogue) // (rows, out)
    }
}

fn layer_norm(w: &mut Weights, prefix: &str, cfg: &Config) -> Result<LayerNorm> {
    Ok(LayerNorm::new(
        w.take(&format!("{prefix}.weight"), &[cfg.n_embd])?,
        w.take(&format!("{prefix}.bias"), &[cfg.n_embd])?,
        cfg.layer_norm_epsilon,
    ))
}

/// Positions a cache grows by: its buffers are allocated in blocks of this many positions and
/// written in place, so a new token copies only its own keys and values.
const CACHE_BLOCK: usize = 256;

/// Keys and values of the positions seen so far, one pair per layer, each (1, nh, capacity, hs)
/// with the first `len` positions written.
#[derive(Default)]
pub struct KvCache {
    layers: Vec<(Tensor, Tensor)>,
    len: usize,
}

impl KvCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of positions already in the cache.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets every position from `len` on (their slots are overwritten by later appends).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// An independent copy of the positions held: appends to one never show in the other (the
    /// cache is written in place, so a plain clone would share its storage).
    pub fn deep_copy(&self) -> Result<KvCache> {
        let copy = |t: &Tensor| -> candle_core::Result<Tensor> {
            let held = t.narrow(2, 0, self.len)?;
            if held.is_contiguous() {
                held.copy()
            } else {
                held.contiguous()
            }
        };
        let layers = self.layers.iter().map(|(k, v)| Ok((copy(k)?, copy(v)?))).collect::<Result<_>>()?;
        Ok(KvCache { layers, len: self.len })
    }

    /// Writes the keys and values of this step's `t` new positions for `layer` (each (t, c),
    /// heads side by side) after the cached ones, and returns all of them so far: (1, nh, T, hs).
    fn append(
        &mut self,
        layer: usize,
        (k, v): (&Tensor, &Tensor),
        n_head: usize,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let (t, c) = k.dims2()?;
        let needed = self.len + t;
        // Each layer's buffers are made at its first append, whatever order layers come in.
        if self.layers.len() <= layer {
            let empty = Tensor::zeros((1, n_head, 0, c / n_head), k.dtype(), k.device())?;
            self.layers.resize(layer + 1, (empty.clone(), empty));
        }
        let (cache_k, cache_v) = &mut self.layers[layer];
        if cache_k.dim(2)? < needed {
            let (_, nh, capacity, hs) = cache_k.dims4()?;
            let grow = needed.next_multiple_of(CACHE_BLOCK) - capacity;
            let spare = Tensor::zeros((1, nh, grow, hs), k.dtype(), k.device())?;
            *cache_k = Tensor::cat(&[&*cache_k, &spare], 2)?;
            *cache_v = Tensor::cat(&[&*cache_v, &spare], 2)?;
        }
        write_heads(cache_k, k, self.len)?;
        write_heads(cache_v, v, self.len)?;
        Ok((cache_k.narrow(2, 0, needed)?, cache_v.narrow(2, 0, needed)?))
    }
}

struct Attention {
    c_attn: Conv1D,
    c_proj: Conv1D,
    n_head: usize,
    head_size: usize,
}

impl Attention {
    fn load(w: &mut Weights, prefix: &str, cfg: &Config, dtype: Option<WeightDtype>) -> Result<Self> {
        Ok(Attention {
            c_attn: Conv1D::load(w, &format!("{prefix}.c_attn"), (cfg.n_embd, 3 * cfg.n_embd), dtype)?,
            c_proj: Conv1D::load(w, &format!("{prefix}.c_proj"), (cfg.n_embd, cfg.n_embd), dtype)?,
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
        batch: &mut [Sequence],
        layer: usize,
    ) -> candle_core::Result<Tensor> {
        let c = x.dim(1)?;
        let qkv = self.c_attn.forward(x, Epilogue::None)?; // (rows, 3c)
        let scale = 1.0 / (self.head_size as f32).sqrt();
        let mut ys = Vec::with_capacity(batch.len());
        for seq in batch.iter_mut() {
            let (row, t) = (seq.row, seq.ids.len());
            // c_attn packs q, k and v as three contiguous blocks of c columns (not per head).
            let qkv = qkv.narrow(0, row, t)?;
            let new_kv = (&qkv.narrow(1, c, c)?, &qkv.narrow(1, 2 * c, c)?);
            let (k, v) = seq.cache.append(layer, new_kv, self.n_head)?; // (1, nh, T, hs)
            ys.push(attention(&qkv.narrow(1, 0, c)?, &k, &v, scale)?); // (t, c)
        }
        self.c_proj.forward(&Tensor::cat(&ys, 0)?, Epilogue::Residual(residual))
    }
}

struct Mlp {
    c_fc: Conv1D,
    c_proj: Conv1D,
    activation: Activation,
}

impl Mlp {
    fn load(w: &mut Weights, prefix: &str, cfg: &Config, dtype: Option<WeightDtype>) -> Result<Self> {
        Ok(Mlp {
            c_fc: Conv1D::load(w, &format!("{prefix}.c_fc"), (cfg.n_embd, cfg.n_inner), dtype)?,
            c_proj: Conv1D::load(w, &format!("{prefix}.c_proj"), (cfg.n_inner, cfg.n_embd), dtype)?,
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
    fn load(w: &mut Weights, layer: usize, cfg: &Config, dtype: Option<WeightDtype>) -> Result<Self> {
        let prefix = format!("h.{layer}");
        Ok(Block {
            ln_1: layer_norm(w, &format!("{prefix}.ln_1"), cfg)?,
            attn: Attention::load(w, &format!("{prefix}.attn"), cfg, dtype)?,
            ln_2: layer_norm(w, &format!("{prefix}.ln_2"), cfg)?,
            mlp: Mlp::load(w, &format!("{prefix}.mlp"), cfg, dtype)?,
        })
    }

    fn forward(&self, x: &Tensor, batch: &mut [Sequence], layer: usize) -> candle_core::Result<Tensor> {
        let x = self.attn.forward(&self.ln_1.forward(x)?, x, batch, layer)?;
        self.mlp.forward(&self.ln_2.forward(&x)?, &x)
    }
}

/// The weight `name`, stored `shape`, for `linear` (`transposed`: used as `x @ w^T`), held in
/// `dtype` (None: its own stored type). Packed straight from the file when the CPU kernels pack,
/// so the model is never held twice.
fn linear_weight(
    w: &mut Weights,
    name: &str,
    shape: (usize, usize),
    transposed: bool,
    dtype: Option<WeightDtype>,
) -> Result<Weight> {
    let dtype = dtype.unwrap_or_else(|| w.stored_dtype(name));
    check_device(w.device(), dtype)?;
    match Weight::packs(w.device(), dtype) {
        true => Ok(Weight::Packed(w.take_packed(name, shape, dtype, transposed)?)),
        false => Ok(Weight::tensor(w.take(name, &[shape.0, shape.1])?, transposed)?),
    }
}

/// Fails for a `dtype` other than fp32 on a device whose kernels do not pack.
fn check_device(device: &Device, dtype: WeightDtype) -> Result<()> {
    match dtype == WeightDtype::F32 || Weight::packs(device, dtype) {
        true => Ok(()),
        false => {
            Err(Error::InvalidArg(format!("dtype {dtype} runs on the CPU only: use fp32 on this device")))
        }
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
}

impl Network {
    /// The network in `w`, its weight matrices held in `dtype` (other dtypes than fp32 run on
    /// the CPU only).
    pub fn load(w: &mut Weights, config: &Config, device: &Device, dtype: WeightDtype) -> Result<Self> {
        check_device(device, dtype)?;
        Self::load_as(w, config, device, Some(dtype))
    }

    /// The network in `w`, each weight matrix held in its own stored type (a GGUF file's Q8_0
    /// as q8, Q4_0 as q4, F16 as fp16...). `dtype()` then reports the token embeddings' type:
    /// the largest matrix, and the one type of every matrix in a file written in one type.
    pub fn load_in_stored_types(w: &mut Weights, config: &Config, device: &Device) -> Result<Self> {
        Self::load_as(w, config, device, None)
    }

    fn load_as(
        w: &mut Weights,
        config: &Config,
        device: &Device,
        dtype: Option<WeightDtype>,
    ) -> Result<Self> {
        let reported = dtype.unwrap_or_else(|| w.stored_dtype("wte.weight"));
        let h =
            (0..config.n_layer).map(|layer| Block::load(w, layer, config, dtype)).collect::<Result<_>>()?;
        Ok(Network {
            // The output head is tied to the token embeddings wte (vocab, c).
            head: linear_weight(w, "wte.weight", (config.vocab_size, config.n_embd), true, dtype)?,
            wpe: w.take("wpe.weight", &[config.n_positions, config.n_embd])?,
            h,
            ln_f: layer_norm(w, "ln_f", config)?,
            config: config.clone(),
            dtype: reported,
            device: device.clone(),
        })
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
        let mut batch = [Sequence { ids, cache, row: 0 }];
        let x = self.hidden_states(&mut batch)?; // (t, c)
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
        let x = self.hidden_states(&mut sequences)?; // (rows, c)
        let last_rows: Vec<u32> = sequences.iter().map(|s| (s.row + s.ids.len() - 1) as u32).collect();
        self.lm_head(&x.index_select(&Tensor::new(last_rows, &self.device)?, 0)?)
    }

    /// The final hidden states (before `ln_f`) of every new token, stacked: (rows, c).
    fn hidden_states(&self, batch: &mut [Sequence]) -> Result<Tensor> {
        let mut embeddings = Vec::with_capacity(batch.len());
        for seq in batch.iter() {
            self.check_input(seq.ids, seq.cache.len())?;
            let tok = self.head.transposed_rows(seq.ids, &self.device)?; // (t, c)
            let pos = self.wpe.narrow(0, seq.cache.len(), seq.ids.len())?; // (t, c)
            embeddings.push((tok + pos)?);
        }
        let mut x = Tensor::cat(&embeddings, 0)?; // (rows, c)
        for (layer, block) in self.h.iter().enumerate() {
            x = block.forward(&x, batch, layer)?;
        }
        for seq in batch.iter_mut() {
            seq.cache.len += seq.ids.len();
        }
        Ok(x)
    }

    /// Logits of hidden states (rows, c): ln_f, then the head tied to the token embeddings.
    fn lm_head(&self, x: &Tensor) -> Result<Tensor> {
        Ok(linear(&self.ln_f.forward(x)?, &self.head, None, Epilogue::None)?) // (rows, vocab)
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
