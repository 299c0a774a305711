//! A linear layer's weight in the form the fastest path on this machine reads: packed into
//! panels for the AVX-512 kernel when the CPU has it and the weight is an f32 CPU tensor, else
//! the tensor itself for gemm, the streaming kernels or candle.

use candle_core::{DType, Device, Tensor};

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
            true => Ok(Weight::Packed(PackedMatrix::from_rows(&w.flatten_all()?.to_vec1()?, k, n))),
            false => Ok(Weight::Tensor(w)),
        }
    }

    /// A weight stored (out, in), as the token embeddings of a tied head: `x @ w^T`.
    pub fn transposed(w: &Tensor) -> candle_core::Result<Self> {
        let (n, k) = w.dims2()?;
        match packable(w) {
            true => Ok(Weight::Packed(PackedMatrix::from_transposed(&w.flatten_all()?.to_vec1()?, k, n))),
            false => Ok(Weight::Tensor(w.t()?)),
        }
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

fn packable(w: &Tensor) -> bool {
    w.device().is_cpu() && w.dtype() == DType::F32 && panel_matmul::available()
}
