// Prompts that start alike share the computation of their common beginning: the results are
// unchanged, and timings.cachedPromptTokens says how much was reused.
import test from 'ava'

import { Gpt2, NexttokenError } from '../index'
import { TINY_MODEL } from './helpers/fixtures'

const shared = Gpt2.fromPretrained(TINY_MODEL)
const unshared = Gpt2.fromPretrained(TINY_MODEL, { prefixCacheBytes: 0 })
const SYSTEM = 'You are a helpful assistant. Answer briefly and politely, and say so when you do not know. '.repeat(2)

test('rows that share a beginning: the same tokens, the beginning computed once', async (t) => {
  const prompts = ['What is a cat?', 'What is a dog?', 'Where is Paris?'].map((q) => SYSTEM + q)
  const withSharing = await (await shared).generateBatch(prompts, { maxNewTokens: 6 })
  const without = await (await unshared).generateBatch(prompts, { maxNewTokens: 6 })
  t.deepEqual(
    withSharing.map((r) => r.newIds),
    without.map((r) => r.newIds),
  )
  t.deepEqual(
    without.map((r) => r.timings.cachedPromptTokens),
    [0, 0, 0],
  )
  const cached = withSharing.map((r) => r.timings.cachedPromptTokens)
  t.is(cached[0], 0, 'the first reads the beginning')
  t.true(cached[1] >= 32 && cached[2] >= 32, `the others copy it: ${cached}`)
  // A later call with the same beginning reuses it too.
  const later = await (await shared).generate(`${SYSTEM}Who wrote Hamlet?`, { maxNewTokens: 4 })
  t.true(later.timings.cachedPromptTokens >= 32)
})

test('prefixCacheBytes must be a non-negative integer', async (t) => {
  for (const prefixCacheBytes of [-1, 1.5, Number.NaN]) {
    const err = await t.throwsAsync(Gpt2.fromPretrained(TINY_MODEL, { prefixCacheBytes }), {
      instanceOf: NexttokenError,
    })
    t.is(err?.code, 'ERR_INVALID_ARG')
  }
})
