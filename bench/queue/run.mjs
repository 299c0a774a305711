// 256 prompts through nexttoken/queue on this machine, against one in-process generateBatch of
// the same prompts on the same model, in the same run: the aggregate tok/s of each, and what the
// queue costs per job. A redis-server (no persistence) is started on a free loopback port and
// stopped at the end; workers are processes of their own sharing the cores through
// RAYON_NUM_THREADS, as on N machines each worker would have its own.
//   node bench/queue/run.mjs [model = __test__/fixtures/tiny-gpt2] [new tokens = 32] [reps = 1]
// Prints the results as JSON on stdout (bench/results/<date>-queue.md quotes them).
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { cpus, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Queue, QueueEvents } from 'bullmq'
import { Gpt2 } from '../../index.js'
import { generateMany } from '../../lib/queue/index.js'
import { machineInfo, promptIds, stat } from '../harness.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const [model = '__test__/fixtures/tiny-gpt2', newTokensArg = '32', repsArg = '1'] = process.argv.slice(2)
const PROMPTS = 256
const PROMPT_TOKENS = 32
const MAX_BATCH_SIZE = 16 // the core's default, the same in every mode
const LATENCY_JOBS = 20
const maxNewTokens = Number(newTokensArg)
const reps = Number(repsArg)
const cores = cpus().length
const all = promptIds(PROMPTS * PROMPT_TOKENS)
const prompts = Array.from({ length: PROMPTS }, (_, i) => all.slice(i * PROMPT_TOKENS, (i + 1) * PROMPT_TOKENS))
const options = { maxNewTokens, eosTokenId: null }
const say = (...m) => console.error('[queue]', ...m)

async function freePort() {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function startRedis() {
  const dir = mkdtempSync(join(tmpdir(), 'nexttoken-bench-redis-'))
  const port = await freePort()
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no']
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise((resolve, reject) => {
    let out = ''
    child.on('exit', (code) => reject(new Error(`redis-server exited (${code}): ${out}`)))
    child.stdout.on('data', (chunk) => {
      out += chunk
      if (out.includes('Ready to accept connections')) resolve()
    })
  })
  const stop = () => {
    child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
  return { port, stop }
}

/** `n` worker processes, each with cores / n rayon threads; resolves once all take jobs. */
async function startWorkers(n, connection, queueName) {
  const config = JSON.stringify({ queueName, connection, model, loadOptions: { maxBatchSize: MAX_BATCH_SIZE } })
  const threads = String(Math.max(1, Math.floor(cores / n)))
  const children = Array.from({ length: n }, () =>
    spawn(process.execPath, [join(here, 'worker.cjs'), config], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, RAYON_NUM_THREADS: threads },
    }),
  )
  await Promise.all(children.map((child) => once(child.stdout, 'data')))
  const stop = () =>
    Promise.all(
      children.map((child) => {
        child.kill('SIGTERM')
        return once(child, 'exit')
      }),
    )
  return { threads, stop }
}

const tokensOf = (results) => results.reduce((sum, r) => sum + r.newIds.length, 0)

async function inProcess() {
  const m = await Gpt2.fromPretrained(model, { maxBatchSize: MAX_BATCH_SIZE })
  await m.generate(prompts[0], { maxNewTokens: 2 }) // warm up the pools
  const walls = []
  let tokens = 0
  for (let r = 0; r < reps; r++) {
    const start = performance.now()
    tokens = tokensOf(await m.generateBatch(prompts, options))
    walls.push(performance.now() - start)
  }
  // One-token generations one at a time: what a job costs without a queue.
  const single = []
  for (let i = 0; i < LATENCY_JOBS; i++) {
    const start = performance.now()
    await m.generate(prompts[i], { maxNewTokens: 1 })
    single.push(performance.now() - start)
  }
  await m.dispose()
  return { walls, tokens, single }
}

async function throughQueue(n, connection, run) {
  const queue = new Queue(`bench-${n}-${run}`, { connection })
  const workers = await startWorkers(n, connection, queue.name)
  await generateMany(queue, [prompts[0]], { maxNewTokens: 2 }, { batchId: 'warm-up' })
  const walls = []
  let tokens = 0
  for (let r = 0; r < reps; r++) {
    const start = performance.now()
    tokens = tokensOf(await generateMany(queue, prompts, options, { batchId: `rep ${r}` }))
    walls.push(performance.now() - start)
  }
  // The same one-token generations as jobs, one at a time: add, run, result back (through one
  // QueueEvents, as a long-lived producer has; making one per call costs a connection).
  const single = []
  if (n === 1) {
    const queueEvents = new QueueEvents(queue.name, { connection })
    await queueEvents.waitUntilReady()
    await new Promise((resolve) => setTimeout(resolve, 200)) // its first blocking read under way
    for (let i = 0; i < LATENCY_JOBS; i++) {
      const start = performance.now()
      await generateMany(queue, [prompts[i]], { maxNewTokens: 1 }, { batchId: `latency ${i}`, queueEvents })
      single.push(performance.now() - start)
    }
    await queueEvents.close()
  }
  await workers.stop()
  await queue.close()
  return { walls, tokens, single, threadsPerWorker: workers.threads }
}

const redis = await startRedis()
try {
  const connection = { host: '127.0.0.1', port: redis.port }
  say(`model ${model}, ${PROMPTS} prompts of ${PROMPT_TOKENS} tokens, ${maxNewTokens} new tokens, ${reps} rep(s)`)
  const direct = await inProcess()
  say('in-process done')
  const one = await throughQueue(1, connection, 'a')
  say('1 worker done')
  const two = await throughQueue(2, connection, 'b')
  say('2 workers done')
  const rate = (run) => stat(run.walls.map((ms) => (run.tokens / ms) * 1000))
  const median = (a) => stat(a).median
  console.log(
    JSON.stringify(
      {
        machine: machineInfo(),
        model,
        prompts: PROMPTS,
        promptTokens: PROMPT_TOKENS,
        maxNewTokens,
        maxBatchSize: MAX_BATCH_SIZE,
        reps,
        aggregateTokPerS: {
          inProcessGenerateBatch: rate(direct),
          oneWorker: { threads: one.threadsPerWorker, ...rate(one) },
          twoWorkers: { threadsEach: two.threadsPerWorker, ...rate(two) },
        },
        wallMs: { inProcess: stat(direct.walls), oneWorker: stat(one.walls), twoWorkers: stat(two.walls) },
        overheadPerJobMs: {
          // The whole batch: the extra wall time of the 1-worker queue over generateBatch, per job.
          batchWall: (median(one.walls) - median(direct.walls)) / PROMPTS,
          // One job alone: added, run, its result back, minus the same generate in-process.
          singleJobLatency: median(one.single) - median(direct.single),
          singleJobMs: stat(one.single),
          singleGenerateMs: stat(direct.single),
        },
      },
      null,
      2,
    ),
  )
} finally {
  redis.stop()
}
