//! A linear layer's weight in the form the fastest path on this machine reads: packed into
//! panels for the AVX-512 kernel when the CPU has it and the weight is an f32 CPU tensor, else
//! the tensor itself for gemm, the streaming kernels or candle.

use candle_core::{Device, Tensor};

use super::packed::PackedMatrix;
use super::panel_matmul;

pub enum Weight {
    /// (k, n), possibly a transposed view.
    Tensor(Tensor),
    Packed(PackedMatrix),
}

impl Weight {
    /// True when weights for `device` are packed (`Weight::packed`), else kept as tensors.
    pub fn packs(device: &Device) -> bool {
        device.is_cpu() && panel_matmul::available()
    }

    /// A weight stored `(rows, cols)` row-major, packed from its values: used as `x @ w`, or as
    /// `x @ w^T` when `transposed` (the tied head, stored (vocab, c)).
    pub fn packed(values: &[f32], (rows, cols): (usize, usize), transposed: bool) -> Self {
        Weight::Packed(match transposed {
            false => PackedMatrix::from_rows(values, rows, cols),
            true => PackedMatrix::from_transposed(values, cols, rows),
        })
    }

    /// The same weight kept as a tensor (a transposed view when `transposed`).
    pub fn tensor(w: Tensor, transposed: bool) -> candle_core::Result<Self> {
        Ok(Weight::Tensor(if transposed { w.t()? } else { w }))
    }

    /// Rows `ids` of the matrix a `transposed` weight was made from: (ids, in).
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
