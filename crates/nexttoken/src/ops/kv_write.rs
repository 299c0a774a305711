//! Writes new keys or values into a KV cache in place, head by head, straight from the columns
//! of `c_attn`'s output: one copy, where splitting heads into a tensor of their own and then
//! appending it would take three.

use candle_core::{CpuStorage, InplaceOp2, Layout, Tensor};

/// Writes `rows` (t, c), heads side by side in its columns (any row stride), into positions
/// `offset..offset + t` of `cache` (1, nh, capacity, hs), contiguous.
pub fn write_heads(cache: &Tensor, rows: &Tensor, offset: usize) -> candle_core::Result<()> {
    let (t, c) = rows.dims2()?;
    let (_, nh, capacity, hs) = cache.dims4()?;
    if nh * hs != c || offset + t > capacity {
        candle_core::bail!("write_heads: {t} rows of {c} at {offset} into {:?}", cache.shape());
    }
    let on_cpu = cache.device().is_cpu() && rows.device().is_cpu();
    if on_cpu && cache.is_contiguous() && rows.stride()[1] == 1 {
        return cache.inplace_op2(rows, &WriteHeads { offset });
    }
    let heads = rows.reshape((1, t, nh, hs))?.transpose(1, 2)?.contiguous()?;
    cache.slice_set(&heads, 2, offset)
}

struct WriteHeads {
    offset: usize,
}

impl InplaceOp2 for WriteHeads {
    fn name(&self) -> &'static str {
        "write-heads"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        ld: &Layout,
        src: &CpuStorage,
        ls: &Layout,
    ) -> candle_core::Result<()> {
        let (CpuStorage::F32(dst), CpuStorage::F32(src)) = (dst, src) else {
            candle_core::bail!("write_heads takes f32 tensors")
        };
        let (_, nh, capacity, hs) = ld.shape().dims4()?;
        let (t, row_stride) = (ls.shape().dims2()?.0, ls.stride()[0]);
        let (dst, src) = (&mut dst[ld.start_offset()..], &src[ls.start_offset()..]);
        for h in 0..nh {
            for i in 0..t {
                let to = (h * capacity + self.offset + i) * hs;
                let from = i * row_stride + h * hs;
                dst[to..to + hs].copy_from_slice(&src[from..from + hs]);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn writes_each_head_at_its_positions() {
        let dev = Device::Cpu;
        let (nh, hs, t) = (3, 4, 2);
        let qkv =
            Tensor::arange(0f32, (t * 3 * nh * hs) as f32, &dev).unwrap().reshape((t, 3 * nh * hs)).unwrap();
        let keys = qkv.narrow(1, nh * hs, nh * hs).unwrap(); // a strided view, as in the model
        let cache = Tensor::zeros((1, nh, 5, hs), candle_core::DType::F32, &dev).unwrap();
        write_heads(&cache, &keys, 1).unwrap();
        let expected = keys.reshape((1, t, nh, hs)).unwrap().transpose(1, 2).unwrap();
        let written = cache.narrow(2, 1, t).unwrap();
        let diff =
            (written - expected).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(diff, 0.0);
        let untouched = cache.narrow(2, 0, 1).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(untouched.to_scalar::<f32>().unwrap(), 0.0);
    }
}
