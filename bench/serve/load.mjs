// Load test of `nexttoken serve` on the tiny fixture model: (1) 256 concurrent streaming clients
// (the official openai client), each text compared with a single `generate` of its prompt; the
// server's event-loop delay over the burst; (2) RSS over 10,000 requests (32 at a time), sampled
// every 1,000 after 2,000 to warm up. Prints JSON; numbers are measured, not asserted.
//
//   node bench/serve/load.mjs [--clients 256] [--requests 10000]
import { createRequire } from 'node:module'
import { cpus, loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import OpenAI from 'openai'
import { startServer, streamed } from './client.mjs'

const require = createRequire(import.meta.url)
const { Gpt2 } = require('../../index.js')
const TINY = new URL('../../__test__/fixtures/tiny-gpt2', import.meta.url).pathname
const { values: args } = parseArgs({
  options: { clients: { type: 'string', default: '256' }, requests: { type: 'string', default: '10000' } },
})
const clients = Number(args.clients)
const requests = Number(args.requests)
const MAX_TOKENS = 32
const LOAD = { maxBatchSize: 64 }

// Distinct prompts, so that every client's text is its own.
const prompts = Array.from({ length: clients }, (_, i) => `Request ${i}: the story of ${i % 7} generative models`)
const reference = await Gpt2.fromPretrained(TINY)
const expected = await Promise.all(prompts.map((p) => reference.generate(p, { maxNewTokens: MAX_TOKENS })))
await reference.dispose()

const server = await startServer(TINY, LOAD)
const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 })
const body = (prompt) => ({ model: 'gpt2', prompt, max_tokens: MAX_TOKENS, temperature: 0 })

await server.stats() // the load's delay is counted from here
const start = performance.now()
const answers = await Promise.all(prompts.map((prompt) => streamed(client, body(prompt))))
const burstMs = performance.now() - start
const burst = await server.stats()
const differing = answers.filter((a, i) => a.text !== expected[i].completion).length

const rss = []
let sent = 0
const worker = async () => {
  while (sent < requests) {
    const i = sent++
    await client.completions.create({ ...body(prompts[i % prompts.length]), max_tokens: 8, temperature: 0.8, seed: i })
    if ((i + 1) % 1000 === 0 && i + 1 > 2000) rss.push(Math.round((await server.stats()).rssMiB * 10) / 10)
  }
}
const soakStart = performance.now()
await Promise.all(Array.from({ length: 32 }, worker))
const soakMs = performance.now() - soakStart
await server.stop()

console.log(
  JSON.stringify(
    {
      date: new Date().toISOString(),
      machine: {
        cpus: cpus().length,
        cpu: cpus()[0]?.model,
        loadavg: loadavg().map((l) => l.toFixed(2)),
        node: process.version,
      },
      burst: {
        clients,
        maxTokens: MAX_TOKENS,
        maxBatchSize: LOAD.maxBatchSize,
        ms: Math.round(burstMs),
        differing,
        eventLoopDelayP99Ms: burst.p99,
        eventLoopDelayMaxMs: burst.max,
      },
      soak: { requests, concurrency: 32, ms: Math.round(soakMs), rssMiBEvery1000AfterWarmup: rss },
    },
    null,
    2,
  ),
)
