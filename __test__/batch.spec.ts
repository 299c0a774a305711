// Batch generation: generateBatch and concurrent calls share forward passes, and every row is
// token for token what it would be alone, and what transformers' left-padded batch gives.
import test from 'ava'

import { AbortError, Gpt2, type GenerateResult } from '../index'
import { readGolden, TINY_MODEL } from './helpers/fixtures'

interface BatchGolden {
  options: { maxNewTokens: number }
  prompts: { text: string; promptIds: number[]; newIds: number[]; equalsSingle: boolean }[]
}

const golden = readGolden<BatchGolden>('batch.json')
const model = Gpt2.fromPretrained(TINY_MODEL, { maxBatchSize: 8 })

test("generateBatch equals transformers' left-padded batch generate, row for row", async (t) => {
  const m = await model
  const results = await m.generateBatch(
    golden.prompts.map((p) => p.promptIds),
    { maxNewTokens: golden.options.maxNewTokens },
  )
  t.is(results.length, golden.prompts.length)
  results.forEach((result, i) => {
    t.deepEqual(result.newIds, golden.prompts[i].newIds, `row ${i}`)
    t.deepEqual(result.ids, [...golden.prompts[i].promptIds, ...golden.prompts[i].newIds])
  })
})

// q8 and q4 too: their products take integer dot products for every number of rows (decoding
// alone and a batch step alike), so a row's numbers never depend on its neighbours there either.
const q8 = Gpt2.fromPretrained(TINY_MODEL, { maxBatchSize: 8, dtype: 'q8' })
const q4 = Gpt2.fromPretrained(TINY_MODEL, { maxBatchSize: 8, dtype: 'q4' })

for (const [name, loaded] of [
  ['the checkpoint’s dtype', model],
  ['q8', q8],
  ['q4', q4],
] as const) {
  test(`every row of a mixed-length batch equals generate on its prompt alone (${name})`, async (t) => {
    const m = await loaded
    const prompts = [
      'A',
      'The cat sat on the mat',
      'Once upon a time, generative models',
      '日本語のテキスト',
      'x '.repeat(150),
    ]
    const options = { maxNewTokens: 30, eosTokenId: null }
    const alone: GenerateResult[] = []
    for (const prompt of prompts) alone.push(await m.generate(prompt, options))
    const together = await m.generateBatch(prompts, options)
    together.forEach((row, i) => {
      t.deepEqual(row.newIds, alone[i].newIds, JSON.stringify(prompts[i]))
      t.is(row.completion, alone[i].completion)
    })
  })
}

test('rows stop on their own: lengths, eos and stop strings per row', async (t) => {
  const m = await model
  const free = await m.generate('Hello there', { maxNewTokens: 20, eosTokenId: null })
  const eos = free.newIds[6]
  const [short, long, withEos] = await Promise.all([
    m.generate('Hello there', { maxNewTokens: 3, eosTokenId: null }),
    m.generate('Hello there', { maxNewTokens: 20, eosTokenId: null }),
    m.generate('Hello there', { maxNewTokens: 20, eosTokenId: eos }),
  ])
  t.is(short.newIds.length, 3)
  t.is(short.stopReason, 'length')
  t.deepEqual(long.newIds, free.newIds)
  t.is(withEos.stopReason, 'eos')
  t.deepEqual(withEos.newIds, free.newIds.slice(0, free.newIds.indexOf(eos) + 1))
  const rows = await m.generateBatch(['Hello there', 'Hello there'], {
    maxNewTokens: 20,
    eosTokenId: null,
    stop: free.completion.slice(10, 14),
  })
  rows.forEach((row) => {
    t.is(row.stopReason, 'stop')
  })
})

test('aborting one request mid-batch leaves the others unchanged', async (t) => {
  const m = await model
  const prompts = ['Alpha', 'Beta gamma', 'Delta epsilon zeta']
  const options = { maxNewTokens: 40, eosTokenId: null }
  const expected = await Promise.all(prompts.map((p) => m.generate(p, options)))
  const controller = new AbortController()
  let seen = 0
  const aborted = m.generate('Victim', {
    ...options,
    signal: controller.signal,
    onToken: () => {
      if (++seen === 10) controller.abort()
    },
  })
  const others = prompts.map((p) => m.generate(p, options))
  const err = await t.throwsAsync<AbortError<GenerateResult>>(aborted, { instanceOf: AbortError })
  t.true(err!.partial!.newIds.length >= 10 && err!.partial!.newIds.length < 40)
  const results = await Promise.all(others)
  results.forEach((r, i) => {
    t.deepEqual(r.newIds, expected[i].newIds)
  })
})

test('a burst of 50 concurrent requests all come back correct', async (t) => {
  const m = await model
  const prompts = Array.from({ length: 50 }, (_, i) => `Request number ${i} says`)
  const options = { maxNewTokens: 12, eosTokenId: null }
  const burst = await Promise.all(prompts.map((p) => m.generate(p, options)))
  // Check a sample of them against one-at-a-time runs on a model with batches of one.
  const single = await Gpt2.fromPretrained(TINY_MODEL, { maxBatchSize: 1 })
  for (const i of [0, 7, 19, 33, 49]) {
    t.deepEqual(burst[i].newIds, (await single.generate(prompts[i], options)).newIds, prompts[i])
  }
  t.true(burst.every((r) => r.newIds.length === 12 && r.stopReason === 'length'))
  await single.dispose()
})

test('maxBatchSize must be a positive integer', async (t) => {
  for (const maxBatchSize of [0, -1, 1.5, NaN]) {
    const err = await t.throwsAsync(Gpt2.fromPretrained(TINY_MODEL, { maxBatchSize }))
    t.is((err as { code?: string }).code, 'ERR_INVALID_ARG')
  }
})

test('model.maxBatchSize is the load option, or the core default of 16 when it is left out', async (t) => {
  t.is((await model).maxBatchSize, 8)
  const defaulted = await Gpt2.fromPretrained(TINY_MODEL)
  t.is(defaulted.maxBatchSize, 16)
  await defaulted.dispose()
  const err = t.throws(() => defaulted.maxBatchSize)
  t.is((err as { code?: string }).code, 'ERR_DISPOSED')
})
