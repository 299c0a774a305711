// node-llama-cpp 3.21.1 (llama.cpp's CPU backend, prebuilt binary), the same weights as an f32 GGUF
// made by make_checkpoint.py; KV cache in F32 (its default is F16). Threads: maxThreads 2, threads 2.
import { basename } from 'node:path'
import { getLlama, LlamaLogLevel } from 'node-llama-cpp'
import { pkgVersion, readArgs, runProtocol } from './driver.mjs'

const { config } = readArgs()
const threads = config.threads
// BENCH_GGUF (bench/dtypes): another GGUF of the same weights (F16, BF16, Q8_0 or Q4_0 matrices).
const ggufPath = process.env.BENCH_GGUF ?? config.models.gguf
let llama, model, context, seq

async function run(ids, n) {
  await seq.clearHistory() // fresh KV cache
  const newIds = []
  const s = performance.now()
  let first = 0
  for await (const t of seq.evaluate(ids, { temperature: 0, yieldEogToken: true })) {
    newIds.push(t)
    if (newIds.length === 1) first = performance.now()
    if (newIds.length >= n) break
  }
  const last = performance.now()
  return { ids: newIds, ttftMs: first - s, decodeMs: last - first, n: newIds.length }
}

await runProtocol('node-llama-cpp', {
  async load() {
    llama = await getLlama({ gpu: false, maxThreads: threads, build: 'never', logLevel: LlamaLogLevel.error })
    model = await llama.loadModel({ modelPath: ggufPath, gpuLayers: 0 })
    context = await model.createContext({
      contextSize: 1024,
      batchSize: 512,
      threads,
      sequences: 1,
      flashAttention: false,
      experimentalKvCacheKeyType: 'F32',
      experimentalKvCacheValueType: 'F32',
    })
    seq = context.getSequence()
  },
  async info() {
    return {
      version: pkgVersion('node-llama-cpp'),
      llamaCpp: llama.llamaCppRelease?.release ?? null,
      buildType: llama.buildType,
      systemInfo: llama.systemInfo,
      weights: `${basename(ggufPath)}, KV cache F32`,
      threads: `maxThreads=${threads}, context threads=${threads}`,
    }
  },
  // llama.cpp computes logits only for the last prompt token; evaluate() yields the greedy token
  // right after the prompt's forward pass (argmax over 50257 logits: microseconds).
  async prefill(ids) {
    const r = await run(ids, 1)
    if (r.n !== 1) throw new Error('no token')
  },
  generate: run,
})
