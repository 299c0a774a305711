// The device backend's fused CUDA kernels (ops/cuda/mod.rs launches them). Built into PTX by
// build.rs with the `cuda` feature. Every kernel exists for f32, bf16 and f16 (suffix _f32,
// _bf16, _f16) and sums in f32.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }

template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16(x); }
template <> __device__ __forceinline__ __half from_float<__half>(float x) { return __float2half(x); }

// The largest or the sum of `value` over the block (of at most 1024 threads); every thread gets it.
template <bool MAX> __device__ float block_reduce(float value) {
  __shared__ float partial[32];
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int offset = 16; offset > 0; offset /= 2) {
    const float other = __shfl_xor_sync(0xffffffff, value, offset);
    value = MAX ? fmaxf(value, other) : value + other;
  }
  __syncthreads(); // `partial` may still be read by an earlier reduction
  if (lane == 0) partial[warp] = value;
  __syncthreads();
  const unsigned warps = (blockDim.x + 31) / 32;
  value = lane < warps ? partial[lane] : (MAX ? -INFINITY : 0.0f);
  for (int offset = 16; offset > 0; offset /= 2) {
    const float other = __shfl_xor_sync(0xffffffff, value, offset);
    value = MAX ? fmaxf(value, other) : value + other;
  }
  return value;
}

// Copies the keys and values of n new rows (the first `width` values of row rows[i] of `kv_new`,
// rows `kv_new_stride` apart: a view of c_attn's output) to row targets[i] of a slot group's layer
// (`width` columns). meta: rows (n), then targets (n). Grid: one block per row.
template <typename T>
__device__ void kv_write(const T *kv_new, uint64_t kv_new_stride, const uint32_t *meta, uint32_t n,
                         T *kv, uint32_t width) {
  const uint32_t i = blockIdx.x;
  const T *from = kv_new + meta[i] * kv_new_stride;
  T *to = kv + (uint64_t)meta[n + i] * width;
  for (uint32_t d = threadIdx.x; d < width; d += blockDim.x) to[d] = from[d];
}

// Attention of n decoding sequences, one new token each, over their slots: sequence i's query is
// columns h * hs.. of row rows[i] of `q` (rows `q_stride` apart); its keys are the first c columns
// of rows first_rows[i] + 0..=positions[i] of `kv` (2c columns a row), its values the next c.
// out (n, c). meta: rows (n), first_rows (n), positions (n). Grid: (n, heads); shared memory:
// one float per key of the longest sequence. Scores, their softmax and the weighted sum in one
// pass over the keys and one over the values.
template <typename T>
__device__ void decode_attention(const T *q, uint64_t q_stride, const T *kv, const uint32_t *meta,
                                 uint32_t n, uint32_t c, uint32_t hs, float scale, T *out) {
  extern __shared__ float weights[];
  const uint32_t i = blockIdx.x, h = blockIdx.y;
  const uint32_t keys = meta[2 * n + i] + 1;
  const uint64_t first = meta[n + i];
  const T *query = q + meta[i] * q_stride + h * hs;
  float largest = -INFINITY;
  for (uint32_t j = threadIdx.x; j < keys; j += blockDim.x) {
    const T *key = kv + (first + j) * 2 * c + h * hs;
    float dot = 0.0f;
    for (uint32_t d = 0; d < hs; ++d) dot += to_float(query[d]) * to_float(key[d]);
    weights[j] = dot * scale;
    largest = fmaxf(largest, weights[j]);
  }
  largest = block_reduce<true>(largest);
  float sum = 0.0f;
  for (uint32_t j = threadIdx.x; j < keys; j += blockDim.x) {
    weights[j] = __expf(weights[j] - largest);
    sum += weights[j];
  }
  sum = block_reduce<false>(sum); // its barriers also publish `weights`
  for (uint32_t d = threadIdx.x; d < hs; d += blockDim.x) {
    const T *value = kv + first * 2 * c + c + h * hs + d;
    float acc = 0.0f;
    for (uint32_t j = 0; j < keys; ++j) acc += weights[j] * to_float(value[j * 2 * c]);
    out[(uint64_t)i * c + h * hs + d] = from_float<T>(acc / sum);
  }
}

// y (rows, cols) = gelu_tanh(y + bias), in place: transformers' gelu_new.
template <typename T> __device__ void bias_gelu(T *y, const T *bias, uint64_t count, uint32_t cols) {
  for (uint64_t at = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; at < count;
       at += (uint64_t)gridDim.x * blockDim.x) {
    const float x = to_float(y[at]) + to_float(bias[at % cols]);
    const float inner = 0.7978845608028654f * (x + 0.044715f * x * x * x);
    y[at] = from_float<T>(0.5f * x * (1.0f + tanhf(inner)));
  }
}

// y (rows, cols) = y + bias + residual, in place (residual contiguous, as y).
template <typename T>
__device__ void bias_residual(T *y, const T *bias, const T *residual, uint64_t count, uint32_t cols) {
  for (uint64_t at = blockIdx.x * (uint64_t)blockDim.x + threadIdx.x; at < count;
       at += (uint64_t)gridDim.x * blockDim.x) {
    y[at] = from_float<T>(to_float(y[at]) + to_float(bias[at % cols]) + to_float(residual[at]));
  }
}

#define INSTANCES(NAME, T)                                                                          \
  extern "C" __global__ void kv_write_##NAME(const T *kv_new, uint64_t kv_new_stride,             \
                                             const uint32_t *meta, uint32_t n, T *kv,             \
                                             uint32_t width) {                                     \
    kv_write(kv_new, kv_new_stride, meta, n, kv, width);                                           \
  }                                                                                                \
  extern "C" __global__ void decode_attention_##NAME(const T *q, uint64_t q_stride, const T *kv,  \
                                                     const uint32_t *meta, uint32_t n, uint32_t c, \
                                                     uint32_t hs, float scale, T *out) {           \
    decode_attention(q, q_stride, kv, meta, n, c, hs, scale, out);                                 \
  }                                                                                                \
  extern "C" __global__ void bias_gelu_##NAME(T *y, const T *bias, uint64_t count, uint32_t cols) { \
    bias_gelu(y, bias, count, cols);                                                               \
  }                                                                                                \
  extern "C" __global__ void bias_residual_##NAME(T *y, const T *bias, const T *residual,         \
                                                  uint64_t count, uint32_t cols) {                 \
    bias_residual(y, bias, residual, count, cols);                                                 \
  }

INSTANCES(f32, float)
INSTANCES(bf16, __nv_bfloat16)
INSTANCES(f16, __half)
