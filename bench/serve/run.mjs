// Benchmark of `nexttoken serve` on the GPT-2 124M shape: aggregate tokens/s and time to first
// token (p50, p99) for 1, 16 and 64 concurrent streaming clients (the official openai client,
// greedy, eos banned so that every request makes --tokens tokens), next to the same work in
// process in the same run: `generateBatch` over the same prompts (throughput) and concurrent
// `model.stream` calls (throughput and time to first token). The server runs in a child process;
// the in-process runs after it in this one, never both at once. With --gguf (the same weights in
// llama.cpp's format; `npm ci` in bench/ first), node-llama-cpp in process too, since no llama.cpp
// server binary is reachable here. Medians of --reps (min–max).
//
//   node bench/serve/run.mjs [--model bench/models/gpt2-124m] [--gguf bench/models/gpt2-124m.gguf]
//     [--reps 3] [--tokens 64] [--date YYYY-MM-DD]
import { writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { cpus, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import OpenAI from 'openai'
import { median, percentile, startServer, streamed } from './client.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const require = createRequire(import.meta.url)
const { Gpt2 } = require('../../index.js')
const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: join(here, '..', 'models', 'gpt2-124m') },
    gguf: { type: 'string' },
    reps: { type: 'string', default: '3' },
    tokens: { type: 'string', default: '64' },
    date: { type: 'string' },
  },
})
const reps = Number(args.reps)
const TOKENS = Number(args.tokens)
const CLIENTS = [1, 16, 64]
const LOAD = { maxBatchSize: 64 }
/** node-llama-cpp's threads: the machine's cores, as rayon's pool takes them. */
const THREADS = cpus().length
const NO_EOS = { 50256: Number.NEGATIVE_INFINITY }
// Distinct prompts of about 16 tokens: no two share a 32-token prefix, so the prefix cache stays out of it.
const prompts = Array.from(
  { length: Math.max(...CLIENTS) },
  (_, i) => `Client ${i} asks about generative models and how they learn ${i * 7}`,
)

const summary = (xs) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs) })

async function overServer(url, clients) {
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 })
  const body = (prompt) => ({ model: 'gpt2', prompt, max_tokens: TOKENS, temperature: 0, logit_bias: { 50256: -100 } })
  const start = performance.now()
  const answers = await Promise.all(prompts.slice(0, clients).map((p) => streamed(client, body(p))))
  const seconds = (performance.now() - start) / 1000
  const tokens = answers.reduce((sum, a) => sum + a.tokens, 0)
  const ttft = answers.map((a) => a.ttftMs)
  return { tokPerS: tokens / seconds, ttftP50: percentile(ttft, 50), ttftP99: percentile(ttft, 99) }
}

async function inProcessStreams(model, clients) {
  const start = performance.now()
  const ttft = await Promise.all(
    prompts.slice(0, clients).map(async (p) => {
      let first
      for await (const _ of model.stream(p, { maxNewTokens: TOKENS, logitBias: NO_EOS }))
        first ??= performance.now() - start
      return first
    }),
  )
  const seconds = (performance.now() - start) / 1000
  return { tokPerS: (clients * TOKENS) / seconds, ttftP50: percentile(ttft, 50), ttftP99: percentile(ttft, 99) }
}

async function inProcessBatch(model, clients) {
  const start = performance.now()
  const results = await model.generateBatch(prompts.slice(0, clients), { maxNewTokens: TOKENS, logitBias: NO_EOS })
  const tokens = results.reduce((sum, r) => sum + r.newIds.length, 0)
  return { tokPerS: tokens / ((performance.now() - start) / 1000) }
}

const runs = Object.fromEntries(CLIENTS.map((c) => [c, { server: [], streams: [], batch: [], llamaCpp: [] }]))
const loadStart = loadavg()[0]
for (let rep = 0; rep < reps; rep++) {
  const server = await startServer(args.model, LOAD)
  await overServer(server.url, 4) // warm-up
  for (const c of CLIENTS) runs[c].server.push(await overServer(server.url, c))
  await server.stop()
  const model = await Gpt2.fromPretrained(args.model, LOAD)
  await model.generate(prompts[0], { maxNewTokens: 8 }) // warm-up
  for (const c of CLIENTS) {
    runs[c].streams.push(await inProcessStreams(model, c))
    runs[c].batch.push(await inProcessBatch(model, c))
  }
  if (args.gguf) {
    // The same prompt ids, tokenized by the model, before it goes.
    const ids = prompts.map((p) => [...model.tokenizer.encode(p)])
    const { nodeLlamaCpp } = await import('./node-llama-cpp.mjs')
    const llamaCpp = await nodeLlamaCpp(args.gguf, THREADS)
    await llamaCpp.run(ids.slice(0, 4), 8) // warm-up
    for (const c of CLIENTS) runs[c].llamaCpp.push(await llamaCpp.run(ids.slice(0, c), TOKENS))
    await llamaCpp.dispose()
  }
  await model.dispose()
  console.error(`rep ${rep + 1}/${reps} done`)
}

const rows = CLIENTS.map((c) => {
  const pick = (mode, key) => summary(runs[c][mode].map((r) => r[key]))
  return {
    clients: c,
    server: {
      tokPerS: pick('server', 'tokPerS'),
      ttftP50Ms: pick('server', 'ttftP50'),
      ttftP99Ms: pick('server', 'ttftP99'),
    },
    streams: {
      tokPerS: pick('streams', 'tokPerS'),
      ttftP50Ms: pick('streams', 'ttftP50'),
      ttftP99Ms: pick('streams', 'ttftP99'),
    },
    generateBatch: { tokPerS: pick('batch', 'tokPerS') },
    ...(args.gguf
      ? {
          nodeLlamaCpp: {
            tokPerS: pick('llamaCpp', 'tokPerS'),
            ttftP50Ms: pick('llamaCpp', 'ttftP50'),
            ttftP99Ms: pick('llamaCpp', 'ttftP99'),
          },
        }
      : {}),
  }
})
const date = args.date ?? new Date().toISOString().slice(0, 10)
const result = {
  date,
  machine: {
    cpus: cpus().length,
    cpu: cpus()[0]?.model,
    loadavgAtStart: loadStart,
    loadavgAtEnd: loadavg()[0],
    node: process.version,
  },
  protocol: { model: args.model, tokens: TOKENS, reps, maxBatchSize: LOAD.maxBatchSize, greedy: true, eosBanned: true },
  llamaCppServer:
    'not run: no llama.cpp server binary is reachable here (node-llama-cpp ships the library, not llama-server)',
  rows,
  raw: runs,
}
const f = (s, digits = 0) => `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`
const ttft = (m) => `${m.ttftP50Ms.median.toFixed(0)} / ${m.ttftP99Ms.median.toFixed(0)}`
const llamaHead = args.gguf ? ' node-llama-cpp tok/s | node-llama-cpp TTFT p50 / p99 ms |' : ''
const table = [
  `| clients | server tok/s | in-process streams tok/s | generateBatch tok/s | server / generateBatch | server TTFT p50 / p99 ms | in-process TTFT p50 / p99 ms |${llamaHead}`,
  `| --: | --: | --: | --: | --: | --: | --: |${args.gguf ? ' --: | --: |' : ''}`,
  ...rows.map(
    (r) =>
      `| ${r.clients} | ${f(r.server.tokPerS, 1)} | ${f(r.streams.tokPerS, 1)} | ${f(r.generateBatch.tokPerS, 1)} | ${((100 * r.server.tokPerS.median) / r.generateBatch.tokPerS.median).toFixed(0)}% | ${ttft(r.server)} | ${ttft(r.streams)} |${r.nodeLlamaCpp ? ` ${f(r.nodeLlamaCpp.tokPerS, 1)} | ${ttft(r.nodeLlamaCpp)} |` : ''}`,
  ),
].join('\n')
writeFileSync(join(here, '..', 'results', `${date}-serve.json`), `${JSON.stringify(result, null, 2)}\n`)
writeFileSync(
  join(here, '..', 'results', `${date}-serve.md`),
  `# nexttoken serve, ${date}\n\n${cpus().length} × ${cpus()[0]?.model}, Node ${process.version}, load average ${loadStart.toFixed(2)} at the start; ${args.model}, ${TOKENS} greedy tokens per request (eos banned), maxBatchSize ${LOAD.maxBatchSize}; medians of ${reps} (min–max).\n\n${table}\n\nllama.cpp server: ${result.llamaCppServer}.\n`,
)
console.log(table)
