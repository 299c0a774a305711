//! What follows a linear layer's product in GPT-2, fused into the same pass over its output: the
//! bias, the tanh GELU after `c_fc`, the residual add after each `c_proj`.

use std::borrow::Cow;

use candle_core::{CpuStorage, Layout, Storage, Tensor};
use rayon::prelude::*;

use super::{gelu, View};

/// What is applied to each output after the product and the bias.
#[derive(Clone, Copy)]
pub enum Epilogue<'a> {
    None,
    /// GPT-2's tanh GELU (`gelu_new`).
    Gelu,
    /// Adds this (m, n) tensor: the residual stream.
    Residual(&'a Tensor),
}

/// An f32 tensor's data and how to index it (1-D or 2-D), from its storage and layout.
pub fn f32_view<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<(&'a [f32], View)> {
    let CpuStorage::F32(data) = storage else { candle_core::bail!("linear takes f32 tensors") };
    let data = &data[layout.start_offset()..];
    let stride = layout.stride();
    let (row_stride, col_stride) = match stride.len() {
        1 => (0, stride[0]),
        2 => (stride[0], stride[1]),
        rank => candle_core::bail!("linear takes 1-D or 2-D tensors, not rank {rank}"),
    };
    Ok((data, View { ptr: data.as_ptr(), row_stride, col_stride }))
}

/// Rows per task of the epilogue after a gemm: a few hundred KB of output each.
const EPILOGUE_ROWS: usize = 32;

/// The epilogue with its operands as slices, ready to run on any rows.
pub struct Finish<'a> {
    bias: Option<Cow<'a, [f32]>>,
    gelu: bool,
    residual: Option<&'a [f32]>,
    n: usize,
}

impl Finish<'_> {
    /// Finishes `out`, columns `j0..` of row `row` (as many as `out` holds).
    pub fn apply(&self, row: usize, j0: usize, out: &mut [f32]) {
        if let Some(bias) = &self.bias {
            out.iter_mut().zip(&bias[j0..]).for_each(|(o, b)| *o += b);
        }
        if self.gelu {
            gelu::gelu_in_place(out);
        }
        if let Some(residual) = self.residual {
            out.iter_mut().zip(&residual[row * self.n + j0..]).for_each(|(o, r)| *o += r);
        }
    }

    fn is_noop(&self) -> bool {
        self.bias.is_none() && !self.gelu && self.residual.is_none()
    }

    /// Finishes every row of a whole (m, n) output, in parallel.
    pub fn apply_all(&self, out: &mut [f32]) {
        if self.is_noop() {
            return;
        }
        out.par_chunks_mut(EPILOGUE_ROWS * self.n).enumerate().for_each(|(chunk, rows)| {
            for (i, row) in rows.chunks_mut(self.n).enumerate() {
                self.apply(chunk * EPILOGUE_ROWS + i, 0, row);
            }
        });
    }
}

/// Runs `product` with the epilogue of an (m, n) output as slices: the bias (contiguous) and the
/// residual's storage, borrowed for the duration.
pub fn with_finish<R>(
    bias: Option<(&CpuStorage, &Layout)>,
    epilogue: Epilogue,
    (m, n): (usize, usize),
    product: impl FnOnce(&Finish) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    let bias = match bias {
        Some((storage, layout)) => {
            if layout.shape().dims() != [n] {
                candle_core::bail!("linear: bias {:?} for {n} outputs", layout.shape());
            }
            let (b, bv) = f32_view(storage, layout)?;
            Some(match bv.col_stride {
                1 => Cow::Borrowed(&b[..n]),
                stride => Cow::Owned((0..n).map(|j| b[j * stride]).collect()),
            })
        }
        None => None,
    };
    let residual_storage = match epilogue {
        Epilogue::Residual(r) if r.dims() != [m, n] => {
            candle_core::bail!("linear: residual {:?} for ({m}, {n}) outputs", r.shape())
        }
        Epilogue::Residual(r) => Some(r.storage_and_layout()),
        _ => None,
    };
    let residual = match &residual_storage {
        Some((storage, layout)) => match &**storage {
            Storage::Cpu(cpu) => Some(super::contiguous_f32(cpu, layout, "linear residual")?),
            _ => candle_core::bail!("linear: the residual is not on the CPU"),
        },
        None => None,
    };
    product(&Finish { bias, gelu: matches!(epilogue, Epilogue::Gelu), residual, n })
}
