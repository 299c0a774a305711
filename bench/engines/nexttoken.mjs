// nexttoken (this repository), loaded from the repository root's build (index.js + the .node addon).
// Threads: candle runs on rayon, so the harness sets RAYON_NUM_THREADS=2 for this process.
import { createRequire } from 'node:module'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { readArgs, runProtocol, topK } from './driver.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const require = createRequire(import.meta.url)
const { config } = readArgs()
let model

await runProtocol('nexttoken', {
  async load() {
    const { Gpt2 } = require(root)
    // BENCH_DTYPE (bench/dtypes): the weights held in that dtype. No prefix cache: every
    // repetition feeds the same prompt ids, which it would find cached after the warm-up, while
    // the protocol times a fresh KV cache per repetition (the peers keep none across calls).
    const dtype = process.env.BENCH_DTYPE
    model = await Gpt2.fromPretrained(config.models.hf, { prefixCacheBytes: 0, ...(dtype ? { dtype } : {}) })
  },
  async info() {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
    return {
      version: pkg.version,
      weights: `model.safetensors f32, held as ${model.dtype}`,
      threads: `RAYON_NUM_THREADS=${process.env.RAYON_NUM_THREADS}`,
    }
  },
  async prefill(ids) {
    await model.logits(Uint32Array.from(ids)) // last position only
  },
  async generate(ids, n) {
    const r = await model.generate(Uint32Array.from(ids), { maxNewTokens: n, eosTokenId: null })
    const t = r.timings
    return { ids: r.newIds, ttftMs: t.promptMs, decodeMs: t.generatedMs, n: t.generatedTokens }
  },
  async topLogits(ids, k) {
    return topK(await model.logits(Uint32Array.from(ids)), k)
  },
})
