// The catalogue of requests that ask for too much (issue 33, item 3): beams, continuations, a
// batch of beam searches, a model's generation_config.json, a prompt of megabytes, and a queue
// worker's own limits. Each is refused at once with ERR_INVALID_ARG or ERR_CONTEXT_OVERFLOW
// naming the limit, before anything is allocated for it, and the model answers afterwards.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { Queue } from 'bullmq'
import test from 'ava'

import { type GenerateOptions, Gpt2, NexttokenError } from '../../index'
import { createGenerationWorker, generateMany } from '../../lib/queue/index'
import { TINY_MODEL } from '../helpers/fixtures'
import { copyOfTinyModel } from '../helpers/model-dirs'
import { startRedis } from '../helpers/redis'

const model = Gpt2.fromPretrained(TINY_MODEL)

/** GPT-2's longest token is 128 bytes: 1024 of them is the most text its context can take. */
const MAX_INPUT_BYTES = 1024 * 128

const CALLS: [string, GenerateOptions, RegExp][] = [
  ['numBeams: 10000', { numBeams: 10_000 }, /numBeams is 10000; the limit is 64 beams/],
  ['numBeams: 100000', { numBeams: 100_000 }, /numBeams is 100000; the limit is 64 beams/],
  [
    'numReturnSequences: 1e8 with sampling',
    { numReturnSequences: 1e8, doSample: true },
    /numReturnSequences is 100000000; the limit is 128/,
  ],
  ['numReturnSequences: 129 of 129 beams', { numReturnSequences: 129, numBeams: 129 }, /the limit is 64 beams/],
]

for (const [name, options, message] of CALLS) {
  test(`generate refuses ${name}, naming the limit`, async (t) => {
    const m = await model
    const err = await t.throwsAsync(m.generate('Hello', options as never), { instanceOf: NexttokenError })
    t.is(err?.code, 'ERR_INVALID_ARG')
    t.regex(err?.message ?? '', message)
    await t.throwsAsync(m.generateBatch(['Hello', 'world'], options), { message })
    t.is((await m.generate('Hello', { maxNewTokens: 2 })).newIds.length, 2, 'the model still answers')
  })
}

test('generate accepts the largest counts allowed: 64 beams, 128 continuations', async (t) => {
  const m = await model
  const beams = await m.generate('Hello', { numBeams: 64, numReturnSequences: 64, maxNewTokens: 2 })
  t.is(beams.length, 64)
  const sampled = await m.generate('Hello', { numReturnSequences: 128, doSample: true, maxNewTokens: 1, seed: 1 })
  t.is(sampled.length, 128)
})

test('generateBatch refuses a batch of beam searches past 1024 beams in all, before any starts', async (t) => {
  const m = await model
  const prompts = Array.from({ length: 17 }, (_, i) => `Prompt ${i}`)
  const err = await t.throwsAsync(m.generateBatch(prompts, { numBeams: 64 }), { instanceOf: NexttokenError })
  t.is(err?.code, 'ERR_INVALID_ARG')
  t.regex(err?.message ?? '', /17 prompts x 64 sequences each make 1088 sequences; one call may run at most 1024/)
  const sampled = await t.throwsAsync(m.generateBatch(prompts, { numReturnSequences: 64, doSample: true }))
  t.regex(sampled?.message ?? '', /1088 sequences; one call may run at most 1024/)
})

test("a model whose generation_config.json asks for 200000 beams: generate('hello') is refused, naming the limit", async (t) => {
  const dir = copyOfTinyModel()
  const config = JSON.parse(readFileSync(join(TINY_MODEL, 'generation_config.json'), 'utf8'))
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ ...config, num_beams: 200_000 }))
  const m = await Gpt2.fromPretrained(dir)
  t.is(m.generationConfig.numBeams, 200_000, 'the file is read as it is')
  const err = await t.throwsAsync(m.generate('hello'), { instanceOf: NexttokenError })
  t.is(err?.code, 'ERR_INVALID_ARG')
  t.regex(err?.message ?? '', /numBeams is 200000; the limit is 64 beams/)
  t.is((await m.generate('hello', { numBeams: 1, maxNewTokens: 2 })).newIds.length, 2, 'a call may set its own')
  await m.dispose()
})

test('a 20 MB prompt is refused by its length before it is tokenized, by every model call', async (t) => {
  const m = await model
  const text = 'The quick brown fox jumps over the lazy dog. '.repeat(20e6 / 45)
  const calls = {
    generate: () => m.generate(text),
    stream: async () => m.stream(text).next(),
    generateBatch: () => m.generateBatch(['Hi', text]),
    topK: () => m.topK(text),
    logits: () => m.logits(text),
    score: () => m.score(text),
  }
  for (const [name, call] of Object.entries(calls)) {
    const err = await t.throwsAsync(call, { instanceOf: NexttokenError }, name)
    t.is(err?.code, 'ERR_CONTEXT_OVERFLOW', name)
    // The byte bound, not the token count: nothing was tokenized.
    t.regex(err?.message ?? '', new RegExp(`at least ${text.length} bytes.*at most ${MAX_INPUT_BYTES} bytes`), name)
  }
})

test('a prompt just over the byte bound is refused; one under it is tokenized and judged by its tokens', async (t) => {
  const m = await model
  const over = await t.throwsAsync(m.topK('a'.repeat(MAX_INPUT_BYTES + 1)))
  t.regex(over?.message ?? '', /at most 131072 bytes \(1024 tokens of at most 128 bytes each\)/)
  // UTF-8 bytes count, not UTF-16 units: 43691 three-byte characters are 131073 bytes.
  const wide = await t.throwsAsync(m.topK('€'.repeat(43_691)))
  t.is(wide?.code, 'ERR_CONTEXT_OVERFLOW')
  t.regex(wide?.message ?? '', /131073 bytes/)
  const under = await t.throwsAsync(m.topK('a '.repeat(MAX_INPUT_BYTES / 2)))
  t.is(under?.code, 'ERR_CONTEXT_OVERFLOW')
  t.regex(under?.message ?? '', /input has 6553\d tokens but the model's context holds at most 1024/)
})

test('a long prompt is tokenized off the JS thread: timers keep firing while it is', async (t) => {
  const m = await model
  // Under the byte bound, so it is tokenized (tens of milliseconds here), then too long in tokens.
  const text = 'The quick brown fox jumps over the lazy dog. '.repeat(2900)
  let ticks = 0
  const timer = setInterval(() => ticks++, 1)
  const started = performance.now()
  const err = await t.throwsAsync(m.topK(text))
  const elapsed = performance.now() - started
  clearInterval(timer)
  t.is(err?.code, 'ERR_CONTEXT_OVERFLOW')
  t.regex(err?.message ?? '', /input has \d+ tokens/)
  t.log(`${ticks} ticks in ${elapsed.toFixed(0)} ms`)
  // Tokenized on the JS thread (hundreds of ms on a busy machine), no timer could fire until it
  // is done; only the forward that refuses the ids after it would leave them a moment.
  t.true(ticks >= Math.min(10, elapsed / 10), `${ticks} ticks in ${elapsed.toFixed(0)} ms`)
})

test('queue: a worker applies its limits when it takes a job: a job past one fails with the limit named, not retried', async (t) => {
  const redis = await startRedis(t)
  const queue = new Queue('limits', { connection: redis.connection })
  t.teardown(() => queue.close())
  const worker = await createGenerationWorker({
    queueName: queue.name,
    connection: redis.connection,
    model: TINY_MODEL,
    limits: { maxNewTokens: 8, maxNumBeams: 2, maxInputLength: 40 },
  })
  t.teardown(() => worker.close(true))
  const fine = await generateMany(queue, ['Hello'], { maxNewTokens: 8 })
  t.is(fine[0].newIds.length, 8)
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['Hello', { maxNewTokens: 9 }, /the new tokens asked for \(maxNewTokens or maxLength\) is 9; the limit is 8/],
    ['Hello', { maxLength: 100 }, /is 99; the limit is 8/],
    ['Hello', { numBeams: 3, maxNewTokens: 2 }, /numBeams is 3; the limit is 2 beams/],
    ['x'.repeat(41), { maxNewTokens: 2 }, /the input's length is 41; the limit is 40/],
    [Array(41).fill(11), { maxNewTokens: 2 }, /the input's length is 41; the limit is 40/],
  ]
  for (const [input, options, message] of cases) {
    const err = await t.throwsAsync(generateMany(queue, [input as string], options), { instanceOf: NexttokenError })
    t.is(err?.code, 'ERR_INVALID_ARG')
    t.regex(err?.message ?? '', message)
  }
  const failed = await queue.getFailed()
  t.is(failed.length, cases.length)
  t.true(
    failed.every((job) => job.attemptsMade === 1),
    'not retried',
  )
  await t.throwsAsync(
    createGenerationWorker({
      queueName: 'x',
      connection: redis.connection,
      model: TINY_MODEL,
      limits: { maxNumBeams: 0 },
    }),
    { message: /limits.maxNumBeams must be a whole number from 1/ },
  )
})
