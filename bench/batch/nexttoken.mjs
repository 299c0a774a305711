// nexttoken: B concurrent generate() calls on one model; its scheduler decodes them together.
// BENCH_DTYPE (fp32, bf16, fp16, q8, q4) picks the weights' dtype; unset, the checkpoint's own.
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { readArgs, runProtocol } from './protocol.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const { Gpt2 } = createRequire(import.meta.url)(root)
const { config } = readArgs()
const model = await Gpt2.fromPretrained(config.models.hf, {
  maxBatchSize: 16,
  dtype: process.env.BENCH_DTYPE || undefined,
  // Repetitions repeat the same prompts: timed from a fresh KV cache, as the peers are.
  prefixCacheBytes: 0,
})

await runProtocol(
  'nexttoken',
  async (prompts, n) => {
    const start = performance.now()
    const stamps = prompts.map(() => [])
    await Promise.all(
      prompts.map((ids, i) =>
        model.generate(ids, {
          maxNewTokens: n,
          eosTokenId: null,
          onToken: () => stamps[i].push(performance.now() - start),
        }),
      ),
    )
    return { wallMs: performance.now() - start, stamps }
  },
  {
    mode: `continuous batching (maxBatchSize 16), concurrent generate() calls, ${model.dtype} weights`,
    dtype: model.dtype,
    threads: `RAYON_NUM_THREADS=${process.env.RAYON_NUM_THREADS}`,
  },
)
