// nexttoken/queue in one process, against a real redis-server: results equal `generate`'s and
// come in input order, options are checked before anything is queued, a batch added twice is run
// once, a job that cannot succeed fails once with its code, and cancelling or closing a worker
// stops its generations. (Killed workers and a restarted Redis: queue-failures.spec.ts.)
import { Queue, QueueEvents } from 'bullmq'
import test, { type ExecutionContext } from 'ava'

import { type GenerateResult, Gpt2, NexttokenError } from '../index'
import {
  type BatchProgress,
  createGenerationWorker,
  enqueueGenerations,
  type GenerationWorker,
  generateMany,
  type QueuedGenerateOptions,
} from '../lib/queue/index'
import { TINY_MODEL } from './helpers/fixtures'
import { type RedisServer, startRedis } from './helpers/redis'

const model = Gpt2.fromPretrained(TINY_MODEL)
let queues = 0

/** A queue of its own on `redis`, closed after the test. */
function queueOn(t: ExecutionContext, redis: RedisServer): Queue {
  const queue = new Queue(`q${queues++}`, { connection: redis.connection })
  t.teardown(() => queue.close())
  return queue
}

async function workerFor(
  t: ExecutionContext,
  queue: Queue,
  options: { maxBatchSize?: number; concurrency?: number } = {},
): Promise<GenerationWorker> {
  const worker = await createGenerationWorker({
    queueName: queue.name,
    connection: queue.opts.connection,
    model: TINY_MODEL,
    loadOptions: { maxBatchSize: options.maxBatchSize },
    concurrency: options.concurrency,
  })
  t.teardown(() => worker.close(true))
  return worker
}

/** What `generate` gives in this process: the reference every queued result must equal. */
async function reference(
  inputs: Array<string | number[]>,
  options: QueuedGenerateOptions & { numReturnSequences?: undefined },
) {
  const m = await model
  return Promise.all(inputs.map((input) => m.generate(input, options)))
}

/** A result without its timings, which differ from run to run. */
const outcome = ({ timings: _, ...rest }: { timings: unknown }) => rest

const PROMPTS = Array.from({ length: 10 }, (_, i) => `Prompt ${i}: the weather today is`)

test('queue: generateMany: the results of generate, in input order, decoded together up to maxBatchSize, with progress', async (t) => {
  const redis = await startRedis(t)
  const queue = queueOn(t, redis)
  const worker = await workerFor(t, queue, { maxBatchSize: 4 })
  t.is(worker.opts.concurrency, 4, 'concurrency defaults to the model maxBatchSize')
  let active = 0
  let mostActive = 0
  worker.on('active', () => (mostActive = Math.max(mostActive, ++active)))
  worker.on('completed', () => active--)

  const options = { maxNewTokens: 40, eosTokenId: null }
  // Text and token ids, as generate takes both.
  const { tokenizer } = await model
  const inputs = PROMPTS.map((p, i) => (i % 3 === 0 ? Array.from(tokenizer.encode(p)) : p))
  const updates: BatchProgress[] = []
  const results = await generateMany(queue, inputs, options, { onProgress: (p) => updates.push(p) })

  const expected = await reference(inputs, options)
  t.deepEqual(results.map(outcome), expected.map(outcome))
  t.true(mostActive > 1 && mostActive <= 4, `${mostActive} jobs ran at once`)
  const last = updates.at(-1)
  t.deepEqual(last && { total: last.total, finished: last.finished, generatedTokens: last.generatedTokens }, {
    total: 10,
    finished: 10,
    generatedTokens: 400,
  })
  t.true(
    updates.some((u) => u.finished < u.total && u.generatedTokens > 0),
    'progress arrives before jobs finish',
  )
})

test('queue: a bad option or input throws at enqueue the error generate throws, and queues nothing', async (t) => {
  const redis = await startRedis(t)
  const queue = queueOn(t, redis)
  const m = await model
  const cases: Array<[string | number[], Record<string, unknown>]> = [
    ['Hello', { max_new_tokens: 5 }],
    ['Hello', { temperature: 'hot' }],
    ['Hello', { logitBias: { x: 1 } }],
    ['Hello', { signal: new AbortController().signal }],
    [[40, -1], { maxNewTokens: 5 }],
  ]
  for (const [input, options] of cases) {
    const queued = await t.throwsAsync(enqueueGenerations(queue, ['fine', input], options), {
      instanceOf: NexttokenError,
    })
    if (!('signal' in options)) {
      // signal is generate's own option: only a queue refuses it.
      const direct = await t.throwsAsync(m.generate(input, options))
      t.is(queued?.message, direct?.message)
      t.is((queued as NexttokenError).code, (direct as NexttokenError).code)
    } else t.is((queued as NexttokenError).code, 'ERR_INVALID_ARG')
  }
  await t.throwsAsync(generateMany(queue, ['Hello'], { max_new_tokens: 5 } as never), { message: /maxNewTokens/ })
  t.deepEqual(
    Object.values(await queue.getJobCounts()),
    new Array(Object.keys(await queue.getJobCounts()).length).fill(0),
  )
})

test('queue: the same batch added twice is run once; another batchId runs it again', async (t) => {
  const redis = await startRedis(t)
  const queue = queueOn(t, redis)
  await workerFor(t, queue)
  // Sampled without a seed: a second run would give other tokens, so equal results mean one run.
  const options = { maxNewTokens: 30, doSample: true, eosTokenId: null }
  const first = await generateMany(queue, PROMPTS.slice(0, 4), options)
  const again = await generateMany(queue, PROMPTS.slice(0, 4), options)
  t.deepEqual(again, first)
  t.is((await queue.getJobCounts()).completed, 4)
  // Key order does not make another batch.
  const reordered = await generateMany(queue, PROMPTS.slice(0, 4), {
    eosTokenId: null,
    doSample: true,
    maxNewTokens: 30,
  })
  t.deepEqual(reordered, first)
  const jobs = await enqueueGenerations(queue, PROMPTS.slice(0, 4), options)
  t.deepEqual(
    jobs.map((job) => job.id),
    (await queue.getCompleted())
      .map((job) => job.id)
      .sort((a, b) => jobs.findIndex((j) => j.id === a) - jobs.findIndex((j) => j.id === b)),
  )
  const other = await generateMany(queue, PROMPTS.slice(0, 4), options, { batchId: 'second run' })
  t.is((await queue.getJobCounts()).completed, 8)
  t.notDeepEqual(
    other.map((r) => r.newIds),
    first.map((r) => r.newIds),
  )
  // The same prompt twice in one batch is two jobs (two samples), not one.
  const twice = await enqueueGenerations(queue, ['Same', 'Same'], options)
  t.not(twice[0].id, twice[1].id)
})

test('queue: a job that cannot succeed fails once, with its code, and is not retried; the rest of the batch completes', async (t) => {
  const redis = await startRedis(t)
  const queue = queueOn(t, redis)
  await workerFor(t, queue)
  const events = new QueueEvents(queue.name, { connection: redis.connection })
  t.teardown(() => events.close())
  const jobOptions = { attempts: 3, backoff: { type: 'fixed', delay: 10 } }
  // Both pass the checks made at enqueue; only the model can judge them.
  const cases: Array<[string | number[], QueuedGenerateOptions & { numReturnSequences?: undefined }, string]> = [
    [[40, 99999], { maxNewTokens: 5 }, 'ERR_TOKEN_OUT_OF_RANGE'],
    ['Hello', { maxNewTokens: 6, doSample: true, temperature: -1 }, 'ERR_INVALID_ARG'],
  ]
  for (const [input, options, code] of cases) {
    const direct = await t.throwsAsync((await model).generate(input, options))
    const err = await t.throwsAsync(generateMany(queue, ['Fine', input], options, { jobOptions }), {
      instanceOf: NexttokenError,
    })
    t.is((err as NexttokenError).code as string, code)
    t.is(err?.message, direct?.message)
    // Added again, the batch finds its jobs (the same ids) rather than adding new ones.
    const [fine, bad] = await enqueueGenerations(queue, ['Fine', input], options, { jobOptions })
    await t.throwsAsync(bad.waitUntilFinished(events)) // (the failure the call above heard of may be the other job's)
    const failed = await queue.getJob(bad.id as string)
    t.is(failed?.attemptsMade, 1, 'not retried')
    t.true(failed?.failedReason.startsWith(`${code}: `), failed?.failedReason)
    // The good job of the first batch completes; in the second the options fail every job.
    if (code === 'ERR_TOKEN_OUT_OF_RANGE') {
      const [expected] = await reference(['Fine'], options)
      t.deepEqual(outcome((await fine.waitUntilFinished(events)) as unknown as GenerateResult), outcome(expected))
    } else await t.throwsAsync(fine.waitUntilFinished(events), { message: /^ERR_INVALID_ARG: / })
  }
})

test('queue: non-finite numbers in options reach the worker: a -Infinity logit bias bans the token', async (t) => {
  const redis = await startRedis(t)
  const queue = queueOn(t, redis)
  await workerFor(t, queue)
  const m = await model
  const plain = await m.generate('The meaning of life is', { maxNewTokens: 5 })
  const options = { maxNewTokens: 5, logitBias: { [plain.newIds[0]]: -Infinity } }
  const [queued] = await generateMany(queue, ['The meaning of life is'], options)
  t.not(queued.newIds[0], plain.newIds[0])
  t.deepEqual(outcome(queued), outcome(await m.generate('The meaning of life is', options)))
})

/** Long enough (1000 tokens each) that a job is surely running when a test acts on it. */
const LONG = { maxNewTokens: 1000, eosTokenId: null }

test("queue: worker.cancelJob aborts the job's generation: it fails with ABORT_ERR and is not retried", async (t) => {
  const redis = await startRedis(t)
  const queue = queueOn(t, redis)
  const worker = await workerFor(t, queue)
  let progressed = 0
  worker.on('progress', (job) => {
    progressed++
    worker.cancelJob(job.id as string, 'the user left')
  })
  const err = await t.throwsAsync(generateMany(queue, ['Once upon a time'], LONG, { jobOptions: { attempts: 3 } }), {
    instanceOf: NexttokenError,
  })
  t.is((err as NexttokenError).code, 'ABORT_ERR')
  t.is(err?.name, 'AbortError')
  t.regex(err?.message ?? '', /the user left/)
  t.true(progressed >= 1)
  const [job] = await queue.getFailed()
  t.is(job.attemptsMade, 1)
  t.true(job.progress !== undefined && (job.progress as { generatedTokens: number }).generatedTokens < 1000)
})

test('queue: close() lets running jobs finish; close(true) hands them back to the queue at once, for another worker', async (t) => {
  const redis = await startRedis(t)
  const queue = queueOn(t, redis)
  const events = new QueueEvents(queue.name, { connection: redis.connection })
  t.teardown(() => events.close())
  const prompts = PROMPTS.slice(0, 3)

  const finishing = await workerFor(t, queue)
  const [first] = await enqueueGenerations(queue, prompts.slice(0, 1), LONG)
  await new Promise((resolve) => finishing.once('progress', resolve))
  await finishing.close()
  t.is(await first.getState(), 'completed')
  t.true(finishing.model.disposed, 'the worker disposed the model it loaded')

  const leaving = await workerFor(t, queue)
  const jobs = await enqueueGenerations(queue, prompts, LONG)
  await new Promise((resolve) => leaving.once('progress', resolve))
  const started = Date.now()
  await leaving.close(true)
  t.log(`handed back in ${Date.now() - started} ms`)
  const counts = await queue.getJobCounts()
  t.deepEqual([counts.active, counts.failed, counts.completed, counts.waiting], [0, 0, 1, 3])

  await workerFor(t, queue)
  const results = (await Promise.all(jobs.map((job) => job.waitUntilFinished(events)))) as unknown as GenerateResult[]
  t.deepEqual(results.map(outcome), (await reference(prompts, LONG)).map(outcome))
})

test('queue: createGenerationWorker checks its options; a model that cannot load starts no worker', async (t) => {
  const redis = await startRedis(t)
  const connection = redis.connection
  const m = await model
  await t.throwsAsync(createGenerationWorker({ queueName: '', connection, model: TINY_MODEL }), {
    code: 'ERR_INVALID_ARG',
  })
  await t.throwsAsync(createGenerationWorker({ queueName: 'q', connection, model: TINY_MODEL, concurrency: 0 }), {
    message: /concurrency/,
  })
  await t.throwsAsync(createGenerationWorker({ queueName: 'q', connection, model: m, loadOptions: {} }), {
    message: /loadOptions/,
  })
  const missing = await t.throwsAsync(createGenerationWorker({ queueName: 'q', connection, model: '/no/such/model' }))
  t.is((missing as NexttokenError).code, 'ERR_MODEL_NOT_FOUND')
  // A loaded model stays its owner's.
  const worker = await createGenerationWorker({ queueName: 'q', connection, model: m, concurrency: 2 })
  t.is(worker.opts.concurrency, 2)
  await worker.close()
  t.false(m.disposed)
})
