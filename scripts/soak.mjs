// Soak and load runs (issue 15), printing numbers rather than asserting them:
//   node scripts/soak.mjs calls [n = 10000]       n sequential generate calls on the tiny model: RSS growth after warm-up
//   node scripts/soak.mjs loads [n = 50] [dir]    n load + dispose cycles (default the 124M shape): RSS against the start
//   node scripts/soak.mjs concurrent [n = 1000]   n generate calls at once: equal to alone, event-loop delay, peak RSS
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { Gpt2 } from '../index.js'

const TINY = '__test__/fixtures/tiny-gpt2'
const [mode = 'calls', countArg, dirArg] = process.argv.slice(2)
const mib = (bytes) => (bytes / 2 ** 20).toFixed(1)
const rss = () => process.memoryUsage().rss
const settle = async () => {
  global.gc?.()
  await new Promise((resolve) => setTimeout(resolve, 200))
}

if (mode === 'calls') {
  const n = Number(countArg ?? 10000)
  const model = await Gpt2.fromPretrained(TINY)
  const prompt = 'The meaning of life is'
  // Warm-up: the allocator's caches fill for about 4,000 calls (RSS rises ~10 MiB, then stays
  // within ±1 MiB up to 30,000 calls), so growth is measured from the end of the warm-up.
  const WARM_UP = 4000
  for (let i = 0; i < WARM_UP; i++)
    await model.generate(prompt, { maxNewTokens: 8, doSample: true, seed: 1_000_000 + i })
  await settle()
  const start = rss()
  const series = []
  for (let i = 0; i < n; i++) {
    await model.generate(prompt, { maxNewTokens: 8, doSample: true, seed: i })
    if ((i + 1) % 1000 === 0) series.push(mib(rss()))
  }
  await settle()
  const end = rss()
  console.log(
    `${n} generate calls after ${WARM_UP} warm-up calls: RSS ${mib(start)} MiB at the start, ${mib(end)} MiB after (${(((end - start) / start) * 100).toFixed(2)}%); every 1000 calls: ${series.join(' ')} MiB`,
  )
} else if (mode === 'loads') {
  const n = Number(countArg ?? 50)
  const dir = dirArg ?? 'bench/models/gpt2-124m'
  const cycle = async () => {
    const model = await Gpt2.fromPretrained(dir)
    await model.nextToken('Hello')
    const during = rss()
    await model.dispose()
    return during
  }
  await settle()
  const cold = rss()
  // The first cycle also loads the addon's code and starts its thread pools, once per process.
  let peak = await cycle()
  await settle()
  const start = rss()
  for (let i = 1; i < n; i++) peak = Math.max(peak, await cycle())
  await settle()
  await new Promise((resolve) => setTimeout(resolve, 2000))
  const end = rss()
  console.log(
    `${n} load + dispose cycles of ${dir}: RSS ${mib(cold)} MiB before any, ${mib(start)} MiB after the first, peak ${mib(peak)} MiB, ${mib(end)} MiB after the last (${(((end - start) / start) * 100).toFixed(1)}% over the first)`,
  )
} else if (mode === 'concurrent') {
  const n = Number(countArg ?? 1000)
  const model = await Gpt2.fromPretrained(TINY)
  const prompts = Array.from({ length: n }, (_, i) => `Request number ${i} says`)
  const delay = monitorEventLoopDelay({ resolution: 1 })
  let peak = rss()
  const sampler = setInterval(() => {
    peak = Math.max(peak, rss())
  }, 20)
  delay.enable()
  const started = performance.now()
  const results = await Promise.all(prompts.map((p) => model.generate(p, { maxNewTokens: 8 })))
  const elapsed = performance.now() - started
  delay.disable()
  clearInterval(sampler)
  let different = 0
  for (const [i, prompt] of prompts.entries()) {
    if (i % 50 !== 0) continue // a sample of them, run alone
    const alone = await model.generate(prompt, { maxNewTokens: 8 })
    if (alone.newIds.join() !== results[i].newIds.join()) different++
  }
  const ms = (ns) => (ns / 1e6).toFixed(2)
  console.log(
    `${n} concurrent generate calls in ${elapsed.toFixed(0)} ms: event-loop delay p99 ${ms(delay.percentile(99))} ms, max ${ms(delay.max)} ms; peak RSS ${mib(peak)} MiB; ${different} of ${Math.ceil(n / 50)} sampled results differ from the call alone`,
  )
} else {
  console.error(`unknown mode ${mode}: calls, loads or concurrent`)
  process.exitCode = 2
}
