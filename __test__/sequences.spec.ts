// numReturnSequences: n continuations of one prompt read once, each seeded from the seed and its
// index alone; greedy with n > 1 refused as transformers refuses it.
import test from 'ava'

import { Gpt2, NexttokenError } from '../index'
import { TINY_MODEL } from './helpers/fixtures'

const model = Gpt2.fromPretrained(TINY_MODEL)
const PROMPT = 'Once upon a time, generative models'
const SAMPLING = { doSample: true, topK: 20, maxNewTokens: 8, seed: 42 }

test('n sampled continuations: the first is the seeded single call, all are reproducible and independent of neighbours', async (t) => {
  const m = await model
  const results = await m.generate(PROMPT, { ...SAMPLING, numReturnSequences: 4 })
  t.is(results.length, 4)
  t.deepEqual(results[0].newIds, (await m.generate(PROMPT, SAMPLING)).newIds)
  t.true(new Set(results.map((r) => r.newIds.join())).size > 1, 'the continuations differ')
  for (const r of results) t.deepEqual(r.ids.slice(0, r.ids.length - r.newIds.length), [...m.tokenizer.encode(PROMPT)])
  // Again, with other generations running beside them: the same tokens.
  const [again] = await Promise.all([
    m.generate(PROMPT, { ...SAMPLING, numReturnSequences: 4 }),
    m.generate('Something else entirely', { doSample: true, maxNewTokens: 12 }),
    m.generateBatch(['a', 'b', 'c'], { doSample: true, maxNewTokens: 5 }),
  ])
  t.deepEqual(
    again.map((r) => r.newIds),
    results.map((r) => r.newIds),
  )
})

test('generateBatch with n: the n results of each prompt together, in prompt order', async (t) => {
  const m = await model
  const prompts = ['The weather today is', 'Hello', '']
  const results = await m.generateBatch(prompts, { ...SAMPLING, numReturnSequences: 2 })
  t.is(results.length, 6)
  for (const [i, prompt] of prompts.entries()) {
    const single = await m.generateBatch([prompt], { ...SAMPLING, numReturnSequences: 2 })
    t.deepEqual(
      results.slice(2 * i, 2 * i + 2).map((r) => r.ids),
      single.map((r) => r.ids),
      `prompt ${i}`,
    )
  }
})

test('greedy with n > 1, n = 0, and n on a stream or a session are ERR_INVALID_ARG', async (t) => {
  const m = await model
  const rejects = async (call: Promise<unknown>, message: RegExp) => {
    const err = await t.throwsAsync(call, { instanceOf: NexttokenError })
    t.is(err?.code, 'ERR_INVALID_ARG')
    t.regex(err?.message ?? '', message)
  }
  await rejects(m.generate(PROMPT, { numReturnSequences: 3 }), /needs doSample: true/)
  await rejects(m.generate(PROMPT, { doSample: true, numReturnSequences: 0 }), /at least 1/)
  await rejects(m.generate(PROMPT, { doSample: true, numReturnSequences: 1.5 }), /non-negative integer/)
  t.throws(() => m.stream(PROMPT, { doSample: true, numReturnSequences: 2 }), { instanceOf: NexttokenError })
  const session = await m.session(PROMPT)
  t.throws(() => session.generate({ doSample: true, numReturnSequences: 2 }), { instanceOf: NexttokenError })
  await session.dispose()
  // One greedy continuation is fine, as an array.
  const [one] = await m.generate(PROMPT, { numReturnSequences: 1, maxNewTokens: 4 })
  t.deepEqual(one.newIds, (await m.generate(PROMPT, { maxNewTokens: 4 })).newIds)
})
