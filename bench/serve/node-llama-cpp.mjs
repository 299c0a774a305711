// The benchmark's llama.cpp side when no llama.cpp server binary is reachable: node-llama-cpp
// 3.21.1 in process (bench/package.json), one context of as many sequences as clients, every
// sequence evaluated at once so that llama.cpp batches them into shared decode calls, greedy,
// eos ignored (as bench/batch/node-llama-cpp.mjs). The prompts are the same token ids.
import { getLlama, LlamaLogLevel } from 'node-llama-cpp'
import { percentile } from './client.mjs'

/** Loads `gguf`; `run(prompts, tokens)` measures like run.mjs's other engines. */
export async function nodeLlamaCpp(gguf, threads) {
  const llama = await getLlama({ gpu: false, maxThreads: threads, build: 'never', logLevel: LlamaLogLevel.error })
  const model = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 })
  return {
    async run(prompts, tokens) {
      const context = await model.createContext({
        contextSize: Math.max(1024, prompts.length * 128),
        batchSize: 512,
        threads,
        sequences: prompts.length,
        flashAttention: false,
      })
      const start = performance.now()
      const ttft = await Promise.all(
        prompts.map(async (ids) => {
          let first
          let n = 0
          for await (const _ of context.getSequence().evaluate(ids, { temperature: 0, yieldEogToken: true })) {
            first ??= performance.now() - start
            if (++n >= tokens) break
          }
          return first
        }),
      )
      const seconds = (performance.now() - start) / 1000
      await context.dispose()
      return {
        tokPerS: (prompts.length * tokens) / seconds,
        ttftP50: percentile(ttft, 50),
        ttftP99: percentile(ttft, 99),
      }
    },
    dispose: () => model.dispose(),
  }
}
