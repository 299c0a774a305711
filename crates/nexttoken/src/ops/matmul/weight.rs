//! A linear layer's weight in the form the fastest path on this machine reads (`layout::packs`
//! decides which): packed into panels (`pack`) on the CPU, in any dtype, for the panel driver;
//! else the f32 tensor itself for gemm and the streaming kernels (fp32 at the portable level:
//! CPUs without AVX2, other architectures, `NEXTTOKEN_SIMD=portable`) or candle (other devices).

use candle_core::{Device, Tensor};

use super::layout;
use super::pack::PackedMatrix;
use crate::dtype::WeightDtype;

pub enum Weight {
    /// (k, n), possibly a transposed view.
    Tensor(Tensor),
    Packed(PackedMatrix),
}

impl Weight {
    /// True when weights in `dtype` for `device` are packed, else kept as f32 tensors: the
    /// plan's answer (`layout::packs`).
    pub fn packs(device: &Device, dtype: WeightDtype) -> bool {
        layout::packs(device, dtype)
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
