// transformers.js (@huggingface/transformers on onnxruntime-node), fp32 ONNX with a KV cache made by
// make_checkpoint.py from the same weights. Threads: session_options intraOpNumThreads 2, interOp 1.
import { basename, dirname } from 'node:path'
import { AutoModelForCausalLM, Tensor, env } from '@huggingface/transformers'
import { pkgVersion, readArgs, runProtocol, topK } from './driver.mjs'

const { config } = readArgs()
const threads = config.threads
// BENCH_TJS_DTYPE (bench/dtypes): 'q8' loads onnx/model_quantized.onnx, 'fp16' onnx/model_fp16.onnx.
const dtype = process.env.BENCH_TJS_DTYPE ?? 'fp32'
const file = { fp32: 'model.onnx', q8: 'model_quantized.onnx', fp16: 'model_fp16.onnx' }[dtype]
let model

const inputs = (ids) => ({
  input_ids: new Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]),
  attention_mask: new Tensor('int64', new BigInt64Array(ids.length).fill(1n), [1, ids.length]),
})

await runProtocol('transformers.js', {
  async load() {
    env.allowRemoteModels = false
    env.allowLocalModels = true
    env.localModelPath = dirname(config.models.onnx)
    model = await AutoModelForCausalLM.from_pretrained(basename(config.models.onnx), {
      dtype,
      device: 'cpu',
      session_options: { intraOpNumThreads: threads, interOpNumThreads: 1 },
    })
  },
  async info() {
    return {
      version: pkgVersion('@huggingface/transformers'),
      onnxruntimeNode: pkgVersion('onnxruntime-node'),
      weights: `onnx/${file} ${dtype}`,
      threads: `intraOpNumThreads=${threads}`,
    }
  },
  async prefill(ids) {
    // num_logits_to_keep = 1: the ONNX computes the last position's logits only, as the others do.
    const out = await model({ ...inputs(ids), num_logits_to_keep: new Tensor('int64', [1n], []) })
    if (out.logits.dims[1] !== 1) throw new Error(`expected 1 row of logits, got ${out.logits.dims}`)
    for (const [k, v] of Object.entries(out)) if (k.startsWith('present')) v.dispose?.()
  },
  async generate(ids, n) {
    const stamps = []
    const streamer = { put: () => stamps.push(performance.now()), end() {} }
    const s = performance.now()
    const out = await model.generate({
      ...inputs(ids),
      max_new_tokens: n,
      do_sample: false,
      eos_token_id: null,
      streamer,
    })
    // stamps[0]: the prompt (put before the first forward); stamps[1..]: each new token
    const newIds = Array.from(out.data.slice(ids.length), Number)
    return { ids: newIds, ttftMs: stamps[1] - s, decodeMs: stamps[stamps.length - 1] - stamps[1], n: newIds.length }
  },
  async topLogits(ids, k) {
    const out = await model({ ...inputs(ids), num_logits_to_keep: new Tensor('int64', [1n], []) })
    return topK(out.logits.data, k)
  },
})
