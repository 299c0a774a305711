// node-llama-cpp 3.21.1 with several sequences in one context: concurrent evaluations of the
// sequences are batched into shared llama.cpp decode calls.
import { getLlama, LlamaLogLevel } from 'node-llama-cpp'
import { readArgs, runProtocol } from './protocol.mjs'

const { config } = readArgs()
const threads = config.threads
const llama = await getLlama({ gpu: false, maxThreads: threads, build: 'never', logLevel: LlamaLogLevel.error })
const model = await llama.loadModel({ modelPath: config.models.gguf, gpuLayers: 0 })
const contexts = new Map()

async function contextFor(b) {
  if (!contexts.has(b)) {
    for (const c of contexts.values()) await c.context.dispose()
    contexts.clear()
    const context = await model.createContext({
      contextSize: Math.max(1024, b * 128),
      batchSize: 512,
      threads,
      sequences: b,
      flashAttention: false,
      experimentalKvCacheKeyType: 'F32',
      experimentalKvCacheValueType: 'F32',
    })
    contexts.set(b, { context, sequences: Array.from({ length: b }, () => context.getSequence()) })
  }
  return contexts.get(b)
}

await runProtocol(
  'node-llama-cpp',
  async (prompts, n) => {
    const { sequences } = await contextFor(prompts.length)
    for (const s of sequences) await s.clearHistory()
    const start = performance.now()
    const stamps = prompts.map(() => [])
    await Promise.all(
      prompts.map(async (ids, i) => {
        for await (const _ of sequences[i].evaluate(ids, { temperature: 0, yieldEogToken: true })) {
          stamps[i].push(performance.now() - start)
          if (stamps[i].length >= n) break
        }
      }),
    )
    return { wallMs: performance.now() - start, stamps }
  },
  { mode: 'one context, B sequences evaluated concurrently', threads: `maxThreads=${threads}` },
)
