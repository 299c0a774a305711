// AbortSignal on generate and stream: stops within one token, rejects with an AbortError that
// carries the partial result, and an already-aborted signal rejects at once.
import test from 'ava'

import { AbortError, Gpt2, type GenerateResult } from '../index'
import { TINY_MODEL } from './helpers/fixtures'

const model = Gpt2.fromPretrained(TINY_MODEL)

test('aborting generate mid-way rejects with AbortError carrying the partial result', async (t) => {
  const m = await model
  const controller = new AbortController()
  const seen: number[] = []
  const promise = m.generate('Once upon a time', {
    maxNewTokens: 1000,
    eosTokenId: null,
    signal: controller.signal,
    onToken: (step) => {
      seen.push(step.id)
      if (seen.length === 5) controller.abort()
    },
  })
  const err = await t.throwsAsync<AbortError<GenerateResult>>(promise, { instanceOf: AbortError })
  t.is(err?.name, 'AbortError')
  t.is(err?.code, 'ABORT_ERR')
  t.is(err?.partial?.stopReason, 'abort')
  // generate runs ahead of its onToken calls: the abort lands within a step of being seen.
  const partial = err!.partial!.newIds
  t.deepEqual(partial, seen) // onToken saw every generated token, and no more
  t.true(partial.length < 1000, `${partial.length} tokens`)
})

test('aborting a running generate without onToken stops within a step', async (t) => {
  const m = await model
  const controller = new AbortController()
  const promise = m.generate('Once upon a time', { maxNewTokens: 900, eosTokenId: null, signal: controller.signal })
  setTimeout(() => controller.abort(), 30)
  const err = await t.throwsAsync<AbortError<GenerateResult>>(promise, { instanceOf: AbortError })
  const generated = err!.partial!.newIds.length
  t.log(`aborted after ${generated} tokens`)
  t.true(generated > 0 && generated < 900)
})

test('an already-aborted signal rejects at once', async (t) => {
  const m = await model
  const signal = AbortSignal.abort()
  const err = await t.throwsAsync(m.generate('Hello', { signal }), { instanceOf: AbortError })
  t.is(err?.code, 'ABORT_ERR')
  t.is(err?.partial, undefined)
  await t.throwsAsync(m.stream('Hello', { signal }).next(), { instanceOf: AbortError })
})

test('aborting a stream makes the iterator throw AbortError after the tokens so far', async (t) => {
  const m = await model
  const controller = new AbortController()
  const ids: number[] = []
  const err = await t.throwsAsync(
    (async () => {
      for await (const step of m.stream('Hello', { maxNewTokens: 1000, eosTokenId: null, signal: controller.signal })) {
        ids.push(step.id)
        if (ids.length === 4) controller.abort()
      }
    })(),
    { instanceOf: AbortError },
  )
  // No token is handed out after the abort; the stream generates at most one ahead of its consumer.
  const partial = (err as AbortError<GenerateResult>).partial!.newIds
  t.is(ids.length, 4)
  t.deepEqual(partial.slice(0, 4), ids)
  t.true(partial.length <= 5, `${partial.length} tokens`)
})

test('a finished generation ignores a later abort', async (t) => {
  const m = await model
  const controller = new AbortController()
  const result = await m.generate('Hello', { maxNewTokens: 3, signal: controller.signal })
  controller.abort()
  t.is(result.stopReason, 'length')
})
