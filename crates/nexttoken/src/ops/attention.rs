//! Causal self-attention of one sequence's new positions over its KV cache, fused: scores,
//! mask, softmax and the weighted sum of values for one block of queries of one head at a time,
//! with every (head, block) on its own task.
//!
//! Queries are read in place from the `c_attn` output and each head's result is written straight
//! into its columns of the (t, c) output, so heads are never split into copies and merged back.
//! The scores of a block live in a per-thread scratch that stays in cache, and a block only
//! scores the keys its last query can see: about half of a prompt's score matrix is masked and
//! never computed. The scale multiplies the scores, not q, as transformers does.

use std::cell::RefCell;

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor, D};
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use super::math::{dot, exp, fold16, larger};
use super::{cpu_f32, SharedOut, View};

/// Queries per task: the block's scores (rows x keys) fit in a core's L2 at GPT-2's 1024 keys.
const QUERY_BLOCK: usize = 64;

/// Below this many queries (decoding), a block goes row by row with plain loops: a matrix
/// product per head would cost more to set up than to run.
const MIN_PRODUCT_ROWS: usize = 4;

/// `softmax(scale * q k^T + causal mask) v` for the `t` new positions of one sequence.
///
/// `q` is (t, c) with heads side by side in its columns (any row stride: a view of `c_attn`'s
/// output); `k` and `v` are the cache, (1, nh, past + t, hs) with a contiguous last dimension.
/// Query `i` sees keys `0..=past + i`. Returns (t, c), heads side by side as `c_proj` wants.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32) -> candle_core::Result<Tensor> {
    if cpu_f32(&[q, k, v]) && q.stride()[1] == 1 && k.stride()[3] == 1 && v.stride()[3] == 1 {
        return q.apply_op3_no_bwd(k, v, &Attention { scale });
    }
    reference(q, k, v, scale)
}

/// The same with candle's operations: for other devices, and the reference in tests.
fn reference(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32) -> candle_core::Result<Tensor> {
    let (t, c) = q.dims2()?;
    let (_, nh, total, hs) = k.dims4()?;
    let past = total - t;
    let q = q.reshape((1, t, nh, hs))?.transpose(1, 2)?.contiguous()?; // (1, nh, t, hs)
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| (0..total).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    let mask = Tensor::from_vec(mask, (t, total), q.device())?.to_dtype(q.dtype())?;
    let scores = (q.matmul(&k.contiguous()?.t()?)? * scale as f64)?.broadcast_add(&mask)?;
    let p = candle_nn::ops::softmax(&scores, D::Minus1)?;
    p.matmul(&v.contiguous()?)?.transpose(1, 2)?.reshape((t, c))
}

struct Attention {
    scale: f32,
}

thread_local! {
    /// One block's scores, reused by every task this thread runs.
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "causal-attention"
    }

    fn cpu_fwd(
        &self,
        sq: &CpuStorage,
        lq: &Layout,
        sk: &CpuStorage,
        lk: &Layout,
        sv: &CpuStorage,
        lv: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(q), CpuStorage::F32(k), CpuStorage::F32(v)) = (sq, sk, sv) else {
            candle_core::bail!("attention takes f32 tensors")
        };
        let (t, c) = lq.shape().dims2()?;
        let (one, nh, total, hs) = lk.shape().dims4()?;
        if one != 1 || lv.shape() != lk.shape() || nh * hs != c || total < t {
            candle_core::bail!("attention: q {:?}, k {:?}, v {:?}", lq.shape(), lk.shape(), lv.shape());
        }
        let past = total - t;
        let q = View { ptr: q[lq.start_offset()..].as_ptr(), row_stride: lq.stride()[0], col_stride: 1 };
        let (ks, vs) = (lk.stride(), lv.stride());
        let (k, v) = (&k[lk.start_offset()..], &v[lv.start_offset()..]);
        // Each head's keys and values: (total, hs) with their own row stride.
        let head_k = |h: usize| View { ptr: k[h * ks[1]..].as_ptr(), row_stride: ks[2], col_stride: 1 };
        let head_v = |h: usize| View { ptr: v[h * vs[1]..].as_ptr(), row_stride: vs[2], col_stride: 1 };
        let mut out = vec![0f32; t * c];
        let out_ptr = SharedOut(out.as_mut_ptr());
        let blocks = t.div_ceil(QUERY_BLOCK);
        (0..nh * blocks).into_par_iter().for_each(|task| {
            let (h, block) = (task / blocks, task % blocks);
            let rows = block * QUERY_BLOCK..t.min((block + 1) * QUERY_BLOCK);
            let head = Head { q, k: head_k(h), v: head_v(h), out: out_ptr, column: h * hs, hs, c };
            // SAFETY: the views come from the layouts checked above, and each task writes only
            // its own rows of its own head's columns.
            SCORES.with_borrow_mut(|scores| unsafe { head.attend(rows, past, self.scale, scores) });
        });
        Ok((CpuStorage::F32(out), Shape::from((t, c))))
    }
}

/// One head's part of the operation.
struct Head {
    q: View,
    k: View,
    v: View,
    out: SharedOut,
    column: usize,
    hs: usize,
    c: usize,
}

impl Head {
    /// Attention of queries `rows` (of t) after `past` cached positions.
    ///
    /// # Safety
    /// The views must hold the rows they are read at (queries `rows`, keys and values up to
    /// `past + rows.end`), and no other thread may write this head's columns of these rows.
    unsafe fn attend(&self, rows: std::ops::Range<usize>, past: usize, scale: f32, scores: &mut Vec<f32>) {
        let (m, keys) = (rows.len(), past + rows.end); // keys seen by the block's last query
        scores.clear();
        scores.resize(m * keys, 0.0);
        // SAFETY: the block's first query lies in q's view (the caller's conditions).
        let q = unsafe { self.q.ptr.add(rows.start * self.q.row_stride + self.column) };
        // SAFETY: the block's first output row lies in out, this head's columns (the caller's).
        let out = unsafe { self.out.0.add(rows.start * self.c + self.column) };
        if m < MIN_PRODUCT_ROWS {
            for i in 0..m {
                let visible = past + rows.start + i + 1;
                // SAFETY: query i, the `visible` keys and values, and row i of this head's output
                // lie in their views (the caller's conditions); the output row is this task's alone.
                let (query, k, v, out) = unsafe {
                    (
                        std::slice::from_raw_parts(q.add(i * self.q.row_stride), self.hs),
                        std::slice::from_raw_parts(self.k.ptr, (visible - 1) * self.k.row_stride + self.hs),
                        std::slice::from_raw_parts(self.v.ptr, (visible - 1) * self.v.row_stride + self.hs),
                        std::slice::from_raw_parts_mut(out.add(i * self.c), self.hs),
                    )
                };
                attend_row(
                    query,
                    (k, self.k.row_stride),
                    (v, self.v.row_stride),
                    scale,
                    &mut scores[..visible],
                    out,
                );
            }
            return;
        }
        // SAFETY: the operands are the views' (caller) and `scores` (m, keys), as the products read.
        unsafe { self.attend_block(m, keys, q, out, past + rows.start, scale, scores) }
    }

    /// The block of `m` queries at `q` as two matrix products, writing `out`.
    ///
    /// # Safety
    /// As `attend`'s, for the block's queries and their `keys` keys; `scores` holds `m * keys`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn attend_block(
        &self,
        m: usize,
        keys: usize,
        q: *const f32,
        out: *mut f32,
        first_visible: usize,
        scale: f32,
        scores: &mut [f32],
    ) {
        // scores (m, keys) = scale * q (m, hs) @ k^T (hs, keys)
        // SAFETY: q (m, hs) and k (keys, hs) lie in their views; scores is (m, keys).
        unsafe {
            self.product(
                m,
                keys,
                self.hs,
                scores.as_mut_ptr(),
                keys,
                (q, 1, self.q.row_stride),
                (self.k.ptr, self.k.row_stride, 1),
                scale,
            )
        };
        for (i, row) in scores.chunks_exact_mut(keys).enumerate() {
            softmax_prefix(row, first_visible + i + 1);
        }
        // out (m, hs) = p (m, keys) @ v (keys, hs)
        // SAFETY: v (keys, hs) lies in its view; out is this block's rows of this head alone.
        unsafe {
            self.product(
                m,
                self.hs,
                keys,
                out,
                self.c,
                (scores.as_ptr(), 1, keys),
                (self.v.ptr, 1, self.v.row_stride),
                1.0,
            )
        }
    }

    /// `dst (m, n) = beta * lhs (m, k) @ rhs (k, n)` on this thread; operands as (pointer,
    /// column stride, row stride).
    ///
    /// # Safety
    /// Each operand must hold its matrix at those strides, and `dst` be written by no one else.
    #[allow(clippy::too_many_arguments)]
    unsafe fn product(
        &self,
        m: usize,
        n: usize,
        k: usize,
        dst: *mut f32,
        dst_row_stride: usize,
        lhs: (*const f32, usize, usize),
        rhs: (*const f32, usize, usize),
        beta: f32,
    ) {
        // SAFETY: the operands and dst are as gemm reads and writes them (the caller's conditions).
        unsafe {
            gemm(
                m,
                n,
                k,
                dst,
                1,
                dst_row_stride as isize,
                false,
                lhs.0,
                lhs.1 as isize,
                lhs.2 as isize,
                rhs.0,
                rhs.1 as isize,
                rhs.2 as isize,
                0.0,
                beta,
                false,
                false,
                false,
                Parallelism::None,
            )
        }
    }
}

simd_dispatch! {
    /// One query over `scores.len()` keys and values (each a slice and its row stride).
    fn attend_row(
        query: &[f32],
        k: (&[f32], usize),
        v: (&[f32], usize),
        scale: f32,
        scores: &mut [f32],
        out: &mut [f32],
    ) => attend_row_body
}

#[inline(always)]
fn attend_row_body(
    query: &[f32],
    (k, k_stride): (&[f32], usize),
    (v, v_stride): (&[f32], usize),
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let hs = query.len();
    for (j, s) in scores.iter_mut().enumerate() {
        *s = dot(query, &k[j * k_stride..j * k_stride + hs]) * scale;
    }
    let visible = scores.len();
    softmax_prefix_body(scores, visible);
    out.fill(0.0);
    for (j, &p) in scores.iter().enumerate() {
        for (o, &x) in out.iter_mut().zip(&v[j * v_stride..j * v_stride + hs]) {
            *o += p * x;
        }
    }
}

simd_dispatch! {
    /// Softmax of the first `visible` scores of `row` in place; the rest (masked) become 0.
    fn softmax_prefix(row: &mut [f32], visible: usize) => softmax_prefix_body
}

/// Max and sum as `fold16`s; the exponentials are a separate, vectorisable map.
#[inline(always)]
fn softmax_prefix_body(row: &mut [f32], visible: usize) {
    let (seen, masked) = row.split_at_mut(visible);
    masked.fill(0.0);
    let max = fold16(seen, f32::NEG_INFINITY, larger, larger);
    seen.iter_mut().for_each(|s| *s = exp(*s - max));
    let sum = fold16(seen, 0.0, |a, b| a + b, |a, b| a + b);
    seen.iter_mut().for_each(|s| *s /= sum);
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn equals_mask_then_softmax_for_prompts_chunks_and_single_tokens() {
        let dev = Device::Cpu;
        let (nh, hs) = (3, 8);
        for (t, past) in [(5, 0), (3, 4), (1, 7), (150, 0), (70, 90)] {
            // q as a view of a wider (t, 3c) matrix, k and v as a cache with spare positions.
            let qkv = Tensor::randn(0f32, 1.0, (t, 3 * nh * hs), &dev).unwrap();
            let q = qkv.narrow(1, 0, nh * hs).unwrap();
            let cache = |_| {
                Tensor::randn(0f32, 1.0, (1, nh, past + t + 9, hs), &dev)
                    .unwrap()
                    .narrow(2, 0, past + t)
                    .unwrap()
            };
            let (k, v) = (cache(0), cache(1));
            let ours = attention(&q, &k, &v, 0.35).unwrap();
            let expected = reference(&q, &k, &v, 0.35).unwrap();
            let diff =
                (ours - expected).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff < 1e-5, "t {t} past {past}: {diff}");
        }
    }
}
