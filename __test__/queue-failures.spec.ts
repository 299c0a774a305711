// nexttoken/queue when things break, with workers in processes of their own and a real
// redis-server: a worker SIGKILLed mid-job, and Redis itself killed and restarted during a run.
// Either way every job completes once, with the result one process gives.
import { Queue, QueueEvents } from 'bullmq'
import test, { type ExecutionContext } from 'ava'

import { Gpt2 } from '../index'
import { generateMany, type QueuedGenerateOptions } from '../lib/queue/index'
import { TINY_MODEL } from './helpers/fixtures'
import { startWorkerProcess } from './helpers/queue-workers'
import { type RedisServer, startRedis } from './helpers/redis'

const model = Gpt2.fromPretrained(TINY_MODEL)

/** Each job long enough (on the tiny model, a second or two for a batch) to be killed midway. */
const GREEDY = { maxNewTokens: 1000, eosTokenId: null }
const SAMPLED = { ...GREEDY, doSample: true, topK: 0, seed: 1234 }

/** What `generate` gives for each input in this process, without the timings. */
async function reference(inputs: string[], options: QueuedGenerateOptions & { numReturnSequences?: undefined }) {
  const m = await model
  return (await Promise.all(inputs.map((input) => m.generate(input, options)))).map(({ timings: _, ...rest }) => rest)
}

function queueOn(t: ExecutionContext, redis: RedisServer, name: string): Queue {
  const queue = new Queue(name, { connection: redis.connection })
  t.teardown(() => queue.close())
  return queue
}

/**
 * Short locks, checked often: a dead worker's jobs are found stalled within a few seconds
 * (BullMQ's defaults, 30 s each, suit production, not a test).
 */
const FAST_STALL = { lockDuration: 2000, stalledInterval: 1000 }

for (const [kind, options] of [
  ['greedy', GREEDY],
  ['sampled with a seed', SAMPLED],
] as const) {
  test(`queue: a worker SIGKILLed mid-job: its jobs are found stalled and completed by another, as one process gives them (${kind})`, async (t) => {
    const redis = await startRedis(t)
    const queue = queueOn(t, redis, `killed-${kind.replace(/\W/g, '')}`)
    const events = new QueueEvents(queue.name, { connection: redis.connection })
    t.teardown(() => events.close())
    const stalled = new Set<string>()
    events.on('stalled', ({ jobId }) => stalled.add(jobId))
    await events.waitUntilReady()
    const prompts = ['Once upon a time', 'The meaning of life is', 'In the beginning', 'Hello, my name is']
    const config = { queueName: queue.name, connection: redis.connection, model: TINY_MODEL, ...FAST_STALL }

    const doomed = startWorkerProcess(t, config)
    await doomed.waitFor((e) => e.event === 'ready')
    const results = generateMany(queue, prompts, options, { queueEvents: events })
    // Progress means a generation is under way; its 1000 tokens are far from done.
    await doomed.waitFor((e) => e.event === 'progress')
    doomed.child.kill('SIGKILL')
    t.is((await doomed.exited).signal, 'SIGKILL')
    const held = new Set(doomed.events.filter((e) => e.event === 'active').map((e) => e.jobId))
    t.false(
      doomed.events.some((e) => e.event === 'completed'),
      'the killed worker finished nothing',
    )

    const rescuer = startWorkerProcess(t, config)
    t.deepEqual(
      (await results).map(({ timings: _, ...rest }) => rest),
      await reference(prompts, options),
    )
    t.true(held.size > 0)
    t.deepEqual(
      [...held].filter((id) => id !== undefined && !stalled.has(id)),
      [],
      'every job it held was stalled',
    )
    const rescued = rescuer.events.filter((e) => e.event === 'completed').map((e) => e.jobId)
    t.is(rescued.length, prompts.length, 'the second worker completed them all')
    const counts = await queue.getJobCounts()
    t.deepEqual([counts.completed, counts.failed], [prompts.length, 0])
  })
}

test('queue: Redis killed and restarted during a run (with an fsynced AOF): no job is lost or run into a wrong result', async (t) => {
  // Jobs live in Redis's memory: without persistence a restart empties the queue. This test
  // alone runs Redis with an append-only file (fsync on every write, in its temporary directory)
  // and SIGKILLs it, as a crash would; the others run without persistence.
  const redis = await startRedis(t, { persistent: true })
  const queue = queueOn(t, redis, 'restarted')
  const prompts = Array.from({ length: 24 }, (_, i) => `Story ${i}: once upon a time`)
  const options = { maxNewTokens: 300, eosTokenId: null }
  const config = { queueName: queue.name, connection: redis.connection, model: TINY_MODEL, concurrency: 4 }
  // Two workers of one core each, as the README's example runs them.
  const workers = [0, 1].map(() => startWorkerProcess(t, config, { RAYON_NUM_THREADS: '1' }))
  await Promise.all(workers.map((w) => w.waitFor((e) => e.event === 'ready')))

  let restarted: Promise<void> | undefined
  let finishedBefore = 0
  const results = await generateMany(queue, prompts, options, {
    onProgress: ({ finished }) => {
      if (restarted || finished < 4) return
      finishedBefore = finished
      restarted = (async () => {
        await redis.kill()
        await new Promise((resolve) => setTimeout(resolve, 500))
        await redis.restart()
      })()
    },
  })
  await restarted
  t.true(finishedBefore >= 4 && finishedBefore < prompts.length, `restarted after ${finishedBefore} jobs`)
  t.deepEqual(
    results.map(({ timings: _, ...rest }) => rest),
    await reference(prompts, options),
  )
  const counts = await queue.getJobCounts()
  t.deepEqual([counts.completed, counts.failed, counts.waiting, counts.active], [prompts.length, 0, 0, 0])
  const done = workers.flatMap((w) => w.events.filter((e) => e.event === 'completed').map((e) => e.jobId))
  t.log(`completions reported by the workers: ${done.length} for ${prompts.length} jobs`)
})
