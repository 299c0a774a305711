//! Launches of `kernels.cu`'s kernels from candle's CUDA storage: layouts checked, the kernel of
//! the storage's dtype loaded once per device (from the PTX build.rs made), its arguments pushed
//! in the order the kernel declares them.

use std::ops::Deref;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    CudaFunction, CudaView, DeviceRepr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::{CudaStorage, DType, Layout, Shape};
use half::{bf16, f16};

use super::MAX_KEYS;

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/kernels.ptx"));

/// Threads of a block: whole warps (the block reductions shuffle across all 32 lanes).
const BLOCK: u32 = 128;

/// `name`'s kernel for `storage`'s dtype (`name_f32`, `name_bf16`, `name_f16`).
fn kernel(storage: &CudaStorage, name: &str) -> candle_core::Result<impl Deref<Target = CudaFunction>> {
    let suffix = match storage.dtype() {
        DType::F32 => "f32",
        DType::BF16 => "bf16",
        DType::F16 => "f16",
        other => candle_core::bail!("{name}: no kernel for {other:?}"),
    };
    storage.device().get_or_load_custom_func(&format!("{name}_{suffix}"), "nexttoken", PTX)
}

/// Where a contiguous tensor starts in its storage.
fn contiguous_start(layout: &Layout, what: &str) -> candle_core::Result<usize> {
    match layout.contiguous_offsets() {
        Some((start, _)) => Ok(start),
        None => candle_core::bail!("{what} must be contiguous"),
    }
}

/// A matrix's first element and row stride; its rows must be contiguous.
fn rows_of(layout: &Layout, what: &str) -> candle_core::Result<(usize, u64)> {
    match layout.stride() {
        [row_stride, 1] => Ok((layout.start_offset(), *row_stride as u64)),
        _ => candle_core::bail!("{what} must be a matrix of contiguous rows"),
    }
}

/// The u32 indices a kernel reads, from `layout`'s start.
fn indices<'a>(
    storage: &'a CudaStorage,
    layout: &Layout,
    what: &str,
) -> candle_core::Result<CudaView<'a, u32>> {
    let start = contiguous_start(layout, what)?;
    Ok(storage.as_cuda_slice::<u32>()?.slice(start..))
}

/// Runs `$run::<T>(args)` for the Rust type of `$dtype`.
macro_rules! by_dtype {
    ($dtype:expr, $run:ident($($arg:expr),*)) => {
        match $dtype {
            DType::F32 => $run::<f32>($($arg),*),
            DType::BF16 => $run::<bf16>($($arg),*),
            DType::F16 => $run::<f16>($($arg),*),
            other => candle_core::bail!("no kernel for {other:?}"),
        }
    };
}

pub fn kv_write(
    (layer, layer_l): (&mut CudaStorage, &Layout),
    (new, new_l): (&CudaStorage, &Layout),
    (meta, meta_l): (&CudaStorage, &Layout),
) -> candle_core::Result<()> {
    let (_, width) = layer_l.shape().dims2()?;
    let layer_start = contiguous_start(layer_l, "kv-write's slot layer")?;
    let new_rows = rows_of(new_l, "kv-write's new keys and values")?;
    let n = meta_l.shape().elem_count() / 2;
    if n == 0 || layer.dtype() != new.dtype() || new_l.shape().dims2()?.1 != width {
        candle_core::bail!("kv-write: {n} rows of {:?} into {:?}", new_l.shape(), layer_l.shape());
    }
    let func = kernel(new, "kv_write")?;
    let meta = indices(meta, meta_l, "kv-write's rows")?;
    let config = LaunchConfig { grid_dim: (n as u32, 1, 1), block_dim: (BLOCK, 1, 1), shared_mem_bytes: 0 };
    fn run<T: CudaDType + DeviceRepr>(
        func: &CudaFunction,
        (layer, layer_start): (&mut CudaStorage, usize),
        (new, (new_start, new_stride)): (&CudaStorage, (usize, u64)),
        meta: &CudaView<u32>,
        (n, width): (u32, u32),
        config: LaunchConfig,
    ) -> candle_core::Result<()> {
        let stream = new.device().cuda_stream();
        let new = new.as_cuda_slice::<T>()?.slice(new_start..);
        let mut layer = layer.as_cuda_slice_mut::<T>()?.slice_mut(layer_start..);
        let mut args = stream.launch_builder(func);
        args.arg(&new).arg(&new_stride).arg(meta).arg(&n).arg(&mut layer).arg(&width);
        // SAFETY: the arguments are kv_write's, in its order and types; the rows it reads and
        // writes are within the views (their layouts checked by the caller, the row indices
        // made by the pass for these tensors).
        unsafe { args.launch(config) }.w()?;
        Ok(())
    }
    let dims = (n as u32, width as u32);
    by_dtype!(new.dtype(), run(&func, (layer, layer_start), (new, new_rows), &meta, dims, config))
}

pub fn decode_attention(
    (n_head, keys, scale): (usize, usize, f32),
    (q, q_l): (&CudaStorage, &Layout),
    (layer, layer_l): (&CudaStorage, &Layout),
    (meta, meta_l): (&CudaStorage, &Layout),
) -> candle_core::Result<(CudaStorage, Shape)> {
    let (_, c) = q_l.shape().dims2()?;
    let (_, width) = layer_l.shape().dims2()?;
    let queries = rows_of(q_l, "decode-attention's queries")?;
    let layer_start = contiguous_start(layer_l, "decode-attention's slot layer")?;
    let n = meta_l.shape().elem_count() / 3;
    let fits = n > 0 && width == 2 * c && c % n_head == 0 && (1..=MAX_KEYS).contains(&keys);
    if !fits || layer.dtype() != q.dtype() {
        candle_core::bail!(
            "decode-attention: q {:?}, slots {:?}, {n} sequences, {keys} keys",
            q_l.shape(),
            layer_l.shape()
        );
    }
    let config = LaunchConfig {
        grid_dim: (n as u32, n_head as u32, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: (keys * std::mem::size_of::<f32>()) as u32,
    };
    let func = kernel(q, "decode_attention")?;
    let meta = indices(meta, meta_l, "decode-attention's indices")?;
    fn run<T: CudaDType + DeviceRepr>(
        func: &CudaFunction,
        (q, (q_start, q_stride)): (&CudaStorage, (usize, u64)),
        (layer, layer_start): (&CudaStorage, usize),
        meta: &CudaView<u32>,
        (n, c, hs, scale): (u32, u32, u32, f32),
        config: LaunchConfig,
    ) -> candle_core::Result<CudaStorage> {
        let device = q.device().clone();
        // SAFETY: the kernel writes every element before anything reads it.
        let mut out = unsafe { device.alloc::<T>(n as usize * c as usize)? };
        let queries = q.as_cuda_slice::<T>()?.slice(q_start..);
        let slots = layer.as_cuda_slice::<T>()?.slice(layer_start..);
        let stream = device.cuda_stream();
        let mut args = stream.launch_builder(func);
        args.arg(&queries)
            .arg(&q_stride)
            .arg(&slots)
            .arg(meta)
            .arg(&n)
            .arg(&c)
            .arg(&hs)
            .arg(&scale)
            .arg(&mut out);
        // SAFETY: the arguments are decode_attention's, in its order and types; every row the
        // indices name is within the queries and the slot layer (the pass made them so), and
        // shared memory holds the longest sequence's `keys` scores.
        unsafe { args.launch(config) }.w()?;
        Ok(CudaStorage::wrap_cuda_slice(out, device))
    }
    let dims = (n as u32, c as u32, (c / n_head) as u32, scale);
    let out = by_dtype!(q.dtype(), run(&func, (q, queries), (layer, layer_start), &meta, dims, config))?;
    Ok((out, Shape::from((n, c))))
}

pub fn epilogue(
    (y, y_l): (&mut CudaStorage, &Layout),
    (bias, bias_l): (&CudaStorage, &Layout),
    residual: Option<(&CudaStorage, &Layout)>,
) -> candle_core::Result<()> {
    let (rows, cols) = y_l.shape().dims2()?;
    let y_start = contiguous_start(y_l, "an epilogue's output")?;
    let bias_start = contiguous_start(bias_l, "an epilogue's bias")?;
    if bias_l.shape().elem_count() != cols || bias.dtype() != y.dtype() {
        candle_core::bail!("epilogue: bias {:?} for {:?}", bias_l.shape(), y_l.shape());
    }
    let residual = match residual {
        Some((storage, layout)) if layout.shape() == y_l.shape() && storage.dtype() == y.dtype() => {
            Some((storage, contiguous_start(layout, "an epilogue's residual")?))
        }
        Some((_, layout)) => {
            candle_core::bail!("epilogue: residual {:?} for {:?}", layout.shape(), y_l.shape())
        }
        None => None,
    };
    let count = rows * cols;
    let func = kernel(bias, if residual.is_some() { "bias_residual" } else { "bias_gelu" })?;
    // A grid-stride loop: at most 65,535 blocks, each element once.
    let blocks = count.div_ceil(BLOCK as usize).clamp(1, 65_535) as u32;
    let config = LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (BLOCK, 1, 1), shared_mem_bytes: 0 };
    fn run<T: CudaDType + DeviceRepr>(
        func: &CudaFunction,
        (y, y_start): (&mut CudaStorage, usize),
        (bias, bias_start): (&CudaStorage, usize),
        residual: Option<(&CudaStorage, usize)>,
        (count, cols): (u64, u32),
        config: LaunchConfig,
    ) -> candle_core::Result<()> {
        let stream = bias.device().cuda_stream();
        let bias = bias.as_cuda_slice::<T>()?.slice(bias_start..);
        let residual = match residual {
            Some((r, start)) => Some(r.as_cuda_slice::<T>()?.slice(start..)),
            None => None,
        };
        let mut y = y.as_cuda_slice_mut::<T>()?.slice_mut(y_start..);
        let mut args = stream.launch_builder(func);
        args.arg(&mut y).arg(&bias);
        if let Some(residual) = &residual {
            args.arg(residual);
        }
        args.arg(&count).arg(&cols);
        // SAFETY: the arguments are bias_gelu's (with a residual, bias_residual's), in their
        // order and types, over `count` contiguous elements of each, checked above.
        unsafe { args.launch(config) }.w()?;
        Ok(())
    }
    let dims = (count as u64, cols as u32);
    by_dtype!(bias.dtype(), run(&func, (y, y_start), (bias, bias_start), residual, dims, config))
}
