// 16 requests sharing a 512-token prefix, each with its own 32-token tail, sent at once: the time
// until every request has its first token, and the aggregate decode rate, with the prefix cache
// (the default) and without it (prefixCacheBytes: 0), on the same model in the same run.
//   node bench/prefix/run.mjs [model dir = bench/models/gpt2-124m] [new tokens = 16]
import { cpus } from 'node:os'
import { Gpt2 } from '../../index.js'

const [dir = 'bench/models/gpt2-124m', newTokensArg = '16'] = process.argv.slice(2)
const maxNewTokens = Number(newTokensArg)
const REQUESTS = 16
const prefix = Array.from({ length: 512 }, (_, i) => (i * 7919 + 13) % 50000)
const prompts = Array.from({ length: REQUESTS }, (_, r) => [
  ...prefix,
  ...Array.from({ length: 32 }, (_, i) => (r * 977 + i * 31 + 5) % 50000),
])

async function measure(options) {
  const model = await Gpt2.fromPretrained(dir, { maxBatchSize: REQUESTS, ...options })
  await model.generate(prompts[0].slice(0, 8), { maxNewTokens: 2 }) // warm up the pools
  const start = performance.now()
  const firsts = []
  let tokens = 0
  let cached = 0
  await Promise.all(
    prompts.map(async (prompt) => {
      const stream = model.stream(prompt, { maxNewTokens, eosTokenId: null })
      let first
      for (;;) {
        const { value, done } = await stream.next()
        if (done) {
          cached += value.timings.cachedPromptTokens
          break
        }
        first ??= performance.now() - start
        tokens++
      }
      firsts.push(first)
    }),
  )
  const total = performance.now() - start
  const allFirst = Math.max(...firsts)
  await model.dispose()
  return { allFirstMs: allFirst, totalMs: total, tokPerS: tokens / (total / 1000), cached }
}

const on = await measure({})
const off = await measure({ prefixCacheBytes: 0 })
console.log(`${cpus()[0].model}, ${cpus().length} logical CPUs, model ${dir}`)
console.log(`${REQUESTS} requests: 512-token shared prefix + 32-token tails, ${maxNewTokens} new tokens each`)
for (const [name, r] of [
  ['prefix cache on ', on],
  ['prefix cache off', off],
]) {
  console.log(
    `${name}: all first tokens after ${r.allFirstMs.toFixed(0)} ms, done after ${r.totalMs.toFixed(0)} ms, ` +
      `${r.tokPerS.toFixed(1)} tok/s aggregate, ${r.cached} prompt tokens reused`,
  )
}
console.log(
  `first tokens ${(off.allFirstMs / on.allFirstMs).toFixed(1)}x sooner, ${(on.tokPerS / off.tokPerS).toFixed(1)}x the rate`,
)
