// Options of `Gpt2.fromPretrained`: their documentation, and their types checked before the core
// checks their limits and fills in its defaults.
import type * as native from '../binding'
import { invalidArg } from './errors'
import type { HubOptions } from './hub/index'

/** Where a model runs (`model.device`). */
export type Device = 'cpu' | 'cuda' | 'metal'

const DEVICE_OPTIONS: readonly string[] = ['cpu', 'cuda', 'metal', 'auto']

/**
 * What the weight matrices (and the token embeddings, which are also the output head) are held
 * in. `'fp32'`; `'bf16'` and `'fp16'` (half the memory and about twice the decoding speed);
 * `'q8'` and `'q4'`, llama.cpp's Q8_0 and Q4_0 blocks (32 weights along the inputs with one f16
 * scale: 8.5 and 4.5 bits per weight). The spellings are transformers.js'; `'bf16'` is added. On
 * the CPU, activations, the KV cache, layer norms and biases stay f32; on a GPU the whole network
 * computes in bf16 or fp16 when the weights are, as PyTorch does (f32 for q8 and q4).
 */
export type Dtype = 'fp32' | 'bf16' | 'fp16' | 'q8' | 'q4'

/** Where the model runs and how its generations are batched, and, for Hub repo ids, how to fetch it. */
export interface LoadOptions extends HubOptions {
  /**
   * Where the model runs. `'cuda'` loads the package `nexttoken-linux-x64-gnu-cuda` (installed
   * separately, with the NVIDIA driver, the CUDA 13 runtime and cuBLAS: docs/install.md); `'metal'`
   * runs on Apple silicon Macs. Where the device's package, driver, libraries or GPU are missing,
   * the load fails with `ERR_BACKEND_UNAVAILABLE` naming what to install. `'auto'`: CUDA, else
   * Metal, else the CPU, whichever is available first; `model.device` says which.
   * @default 'cpu'
   */
  device?: Device | 'auto'
  /**
   * What the weights are held in (see {@link Dtype}); quantizing happens while the model loads.
   * @default the checkpoint's own type: 'fp16' or 'bf16' for files stored so, else 'fp32'; a
   * GGUF file's matrices each in their own type (Q8_0 as 'q8', Q4_0 as 'q4', F16 as 'fp16'...)
   */
  dtype?: Dtype
  /**
   * Most generations decoded together: concurrent `generate` / `stream` / `generateBatch` calls
   * share forward passes (continuous batching); more wait, in order, for a free slot (waiting
   * costs no thread and no KV cache). From 1 to 1024.
   * @default 16
   */
  maxBatchSize?: number
  /**
   * A running generation whose caller asks for no token for this many milliseconds (a stream
   * nobody pulls from) is ended, freeing its batch slot and KV cache for waiting calls; its
   * next pull throws `ERR_STREAM_IDLE`. Above 0; `Infinity`: never (then only garbage
   * collection frees the slot of a stream dropped without `return()`).
   * @default 60000
   */
  streamIdleTimeoutMs?: number
  /**
   * Most generations waiting for a batch slot while `maxBatchSize` run. A `generate` or
   * `stream` beyond it fails at once with `ERR_OVERLOADED` (a service can answer 503 instead of
   * letting latency grow); so does a `generateBatch` whose rows do not all fit. `Infinity`: no
   * limit.
   * @default Infinity
   */
  maxQueueLength?: number
  /**
   * Bytes of memory for the KV cache of prompt prefixes already computed: a prompt that starts
   * with the same tokens as an earlier one (at least 32: a system prompt, few-shot examples,
   * rows of a batch) copies them instead of computing them again, and concurrent prompts that
   * share a beginning wait for the first to read it. Least recently used prefixes leave first.
   * `result.timings.cachedPromptTokens` says how many were reused. 0 turns it off.
   * @default 268435456 (256 MiB)
   */
  prefixCacheBytes?: number
  /**
   * A directory for packed weights: the first load of a checkpoint (in a dtype, on a CPU) writes
   * its weight matrices there as the kernels read them (as large as the weights in that dtype),
   * and later loads map that file instead of reading and converting the checkpoint: a 124M
   * model then loads in well under 150 ms. A file of another checkpoint version, dtype or CPU
   * path is written again; failing to write one never fails the load. The trade-off: truncating
   * a mapped cache file in place (not replacing or deleting it) ends the process with SIGBUS,
   * which reading the checkpoint never does. Created if missing.
   * @default none: every load reads and packs the checkpoint
   */
  packedCacheDir?: string
}

/** Checks the options' types; an absent option stays absent so that the core's default applies. */
export function toNativeLoadOptions(options: LoadOptions): {
  device?: Device | 'auto'
  dtype?: string
  packedCacheDir?: string
  scheduler: native.NativeSchedulerOptions
} {
  const { device, dtype, maxBatchSize, streamIdleTimeoutMs, maxQueueLength, prefixCacheBytes, packedCacheDir } = options
  if (device !== undefined && !DEVICE_OPTIONS.includes(device))
    throw invalidArg(`device must be 'cpu', 'cuda', 'metal' or 'auto'; got ${String(device)}`)
  if (dtype !== undefined && typeof dtype !== 'string')
    throw invalidArg(`dtype must be 'fp32', 'bf16', 'fp16', 'q8' or 'q4'; got ${String(dtype)}`)
  if (packedCacheDir !== undefined && (typeof packedCacheDir !== 'string' || packedCacheDir === ''))
    throw invalidArg(`packedCacheDir must be a directory path; got ${String(packedCacheDir)}`)
  checkNumber('maxBatchSize', maxBatchSize, { min: 1, integer: true, infinity: false })
  checkNumber('streamIdleTimeoutMs', streamIdleTimeoutMs, { min: 0, integer: false, infinity: true })
  checkNumber('maxQueueLength', maxQueueLength, { min: 0, integer: true, infinity: true })
  checkNumber('prefixCacheBytes', prefixCacheBytes, { min: 0, integer: true, infinity: false })
  return {
    device,
    dtype,
    packedCacheDir,
    scheduler: { maxBatchSize, streamIdleTimeoutMs, maxQueueLength, prefixCacheBytes },
  }
}

/**
 * Checks the type of a numeric load option; its limits and defaults are the core's. `Infinity`
 * means "no limit" where `infinity` allows it.
 */
function checkNumber(name: string, value: unknown, rule: { min: number; integer: boolean; infinity: boolean }) {
  if (value === undefined) return
  const valid =
    typeof value === 'number' &&
    value >= rule.min &&
    (value === Infinity ? rule.infinity : !rule.integer || Number.isInteger(value))
  if (!valid) {
    const kind = rule.integer ? `an integer >= ${rule.min}` : `a number >= ${rule.min}`
    throw invalidArg(`${name} must be ${kind}${rule.infinity ? ' or Infinity' : ''}; got ${String(value)}`)
  }
}
