// How the rest of a Node process fares while many streams run on one model:
//   node bench/streams/responsiveness.mjs [--model DIR] [--streams N] [--tokens N] [--batch N]
//                                          [--calls stream|generate] [--deadline S]
// Runs N concurrent `for await (... of model.stream(...))` loops (or `generate` calls; default 200
// streams on the committed tiny model, maxBatchSize 16, libuv's default 4 pool threads) and meanwhile
//   - reads a small file with fs.readFile every 20 ms (libuv's pool: its latency shows whether
//     waiting generations hold pool threads), and
//   - samples the event-loop delay with perf_hooks.monitorEventLoopDelay (the JS thread).
// Prints one JSON line. A run that has not finished after --deadline seconds reports
// `finished: false` with how many streams had ended. Benchmarks are not tests: nothing is asserted.
import { readFile, writeFile, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { parseArgs } from 'node:util'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const { values } = parseArgs({
  options: {
    model: { type: 'string', default: join(root, '__test__', 'fixtures', 'tiny-gpt2') },
    streams: { type: 'string', default: '200' },
    tokens: { type: 'string', default: '32' },
    batch: { type: 'string', default: '16' },
    calls: { type: 'string', default: 'stream' },
    deadline: { type: 'string', default: '120' },
  },
})
const streams = Number(values.streams)
const { Gpt2 } = await import(join(root, 'index.js'))
const model = await Gpt2.fromPretrained(values.model, { maxBatchSize: Number(values.batch) })

const file = join(await mkdtemp(join(tmpdir(), 'nexttoken-bench-')), 'small.txt')
await writeFile(file, 'one line\n')
const reads = []
let reading = true
const readLoop = (async () => {
  while (reading) {
    const started = performance.now()
    await readFile(file)
    reads.push(performance.now() - started)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
})()

const delay = monitorEventLoopDelay({ resolution: 1 })
delay.enable()
let finished = 0
const started = performance.now()
const options = { maxNewTokens: Number(values.tokens), eosTokenId: null }
const runs = Array.from({ length: streams }, async (_, i) => {
  const prompt = `Stream number ${i} says`
  if (values.calls === 'generate') await model.generate(prompt, options)
  else for await (const step of model.stream(prompt, options)) void step
  finished++
})
const deadline = new Promise((resolve) => setTimeout(resolve, Number(values.deadline) * 1000).unref())
const done = await Promise.race([Promise.all(runs).then(() => true), deadline.then(() => false)])
const elapsedMs = performance.now() - started
delay.disable()
reading = false
// A read stuck behind blocked pool threads would never return: do not wait for it.
await Promise.race([readLoop, new Promise((resolve) => setTimeout(resolve, 1000).unref())])

const sorted = [...reads].sort((a, b) => a - b)
const pct = (p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : null)
const ms = (ns) => Math.round(ns / 1e4) / 100
console.log(
  JSON.stringify({
    calls: values.calls,
    streams,
    maxBatchSize: Number(values.batch),
    tokensPerStream: Number(values.tokens),
    uvThreadpoolSize: Number(process.env.UV_THREADPOOL_SIZE ?? 4),
    finished: done,
    streamsEnded: finished,
    elapsedMs: Math.round(elapsedMs),
    fsReadFile: { count: reads.length, p50Ms: pct(50), p99Ms: pct(99), maxMs: sorted.at(-1) ?? null },
    eventLoopDelay: { p50Ms: ms(delay.percentile(50)), p99Ms: ms(delay.percentile(99)), maxMs: ms(delay.max) },
  }),
)
process.exit(0)
