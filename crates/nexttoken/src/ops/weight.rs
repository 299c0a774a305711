//! A linear layer's weight in the form the fastest path on this machine reads: packed into
//! panels for the AVX-512 kernel when the CPU has it and the weight is an f32 CPU tensor, else
//! the tensor itself for gemm, the streaming kernels or candle.

use candle_core::{DType, Device, Storage, Tensor};

use super::packed::PackedMatrix;
use super::panel_matmul;

pub enum Weight {
    /// (k, n), possibly a transposed view.
    Tensor(Tensor),
    Packed(PackedMatrix),
}

impl Weight {
    /// A Conv1D weight, stored (in, out): `x @ w`.
    pub fn new(w: Tensor) -> candle_core::Result<Self> {
        let (k, n) = w.dims2()?;
        match packable(&w) {
            true => with_values(&w, |w| Weight::packed_rows(w, k, n)),
            false => Ok(Weight::Tensor(w)),
        }
    }

    /// A weight stored (out, in), as the token embeddings of a tied head: `x @ w^T`.
    pub fn transposed(w: &Tensor) -> candle_core::Result<Self> {
        let (n, k) = w.dims2()?;
        match packable(w) {
            true => with_values(w, |w| Weight::packed_transposed(w, k, n)),
            false => Ok(Weight::Tensor(w.t()?)),
        }
    }

    /// True when weights for `device` are packed: `packed_rows` and `packed_transposed` apply.
    pub fn packs(device: &Device) -> bool {
        device.is_cpu() && panel_matmul::available()
    }

    /// A Conv1D weight packed from its values, row-major (in = k, out = n).
    pub fn packed_rows(values: &[f32], k: usize, n: usize) -> Self {
        Weight::Packed(PackedMatrix::from_rows(values, k, n))
    }

    /// A tied head packed from the token embeddings' values, row-major (out = n, in = k).
    pub fn packed_transposed(values: &[f32], k: usize, n: usize) -> Self {
        Weight::Packed(PackedMatrix::from_transposed(values, k, n))
    }

    /// Rows `ids` of the (out, in) matrix a `transposed` weight was made from: (ids, in).
    pub fn transposed_rows(&self, ids: &[u32], device: &Device) -> candle_core::Result<Tensor> {
        match self {
            Weight::Tensor(wt) => wt.t()?.index_select(&Tensor::new(ids, device)?, 0),
            Weight::Packed(packed) => {
                let values = ids.iter().flat_map(|&id| packed.column(id as usize)).collect();
                Tensor::from_vec(values, (ids.len(), packed.k()), device)
            }
        }
    }
}

/// Runs `f` on the values of a contiguous f32 CPU tensor, in place (no copy of a large weight).
fn with_values<R>(w: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    let w = w.contiguous()?;
    let (storage, layout) = w.storage_and_layout();
    match &*storage {
        Storage::Cpu(cpu) => Ok(f(super::contiguous_f32(cpu, layout, "weight")?)),
        _ => candle_core::bail!("only a CPU weight is packed"),
    }
}

fn packable(w: &Tensor) -> bool {
    w.dtype() == DType::F32 && Weight::packs(w.device())
}
