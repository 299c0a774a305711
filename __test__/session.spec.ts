// Sessions from JS: the notebook's step 3 at one position per token, forks, truncation,
// continuing with generate / stream, and bad input that leaves the session unchanged.
import test from 'ava'

import { Gpt2, NexttokenError } from '../index'
import { maxAbsDiff, TINY_MODEL } from './helpers/fixtures'

const model = Gpt2.fromPretrained(TINY_MODEL)
const TEXT = "I am learning about generative ai and LLM's"

test('stepping a session greedily equals generate, one position per token', async (t) => {
  const m = await model
  const session = await m.session(TEXT)
  const promptLength = m.tokenizer.encode(TEXT).length
  t.is(session.positionsComputed, promptLength)
  for (let i = 0; i < 8; i++) await session.append([(await session.nextToken()).id])
  t.is(session.positionsComputed, promptLength + 8, 'each step cost one position')
  const generated = await m.generate(TEXT, { maxNewTokens: 8, eosTokenId: null })
  t.deepEqual(session.ids, generated.ids)
  t.is(session.text, generated.text)
  // Reading again computes nothing; the numbers are the model's on the whole text.
  t.deepEqual(await session.topK(3), await session.topK(3))
  t.is(session.positionsComputed, promptLength + 8)
  t.true(maxAbsDiff(await session.logits(), await m.logits(session.ids)) < 1e-4)
  const probabilities = await session.probabilities()
  t.true(Math.abs(probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-4)
  await session.dispose()
})

test('a fork diverges without touching its parent; truncate then append is a fresh session', async (t) => {
  const m = await model
  const parent = await m.session('The weather today is')
  const before = await parent.logits()
  const child = await parent.fork()
  t.is(child.positionsComputed, 0, 'forking computes nothing')
  await child.append(' cold and')
  t.deepEqual(parent.ids, [...m.tokenizer.encode('The weather today is')])
  t.deepEqual(await parent.logits(), before)
  await child.truncate(parent.ids.length)
  await child.append(' warm')
  const fresh = await m.session('The weather today is warm')
  t.deepEqual(child.ids, fresh.ids)
  t.true(maxAbsDiff(await child.logits(), await fresh.logits()) < 1e-4)
  for (const s of [parent, child, fresh]) await s.dispose()
})

test('generate and stream continue the session, which then holds the generated tokens', async (t) => {
  const m = await model
  const session = await m.session(TEXT)
  const computed = session.positionsComputed
  const continued = await session.generate({ maxNewTokens: 6 })
  const plain = await m.generate(TEXT, { maxNewTokens: 6 })
  t.deepEqual(continued.ids, plain.ids)
  t.deepEqual(session.ids, plain.ids)
  t.true(session.positionsComputed - computed <= 6 + 1, 'the text was not read again')
  const steps = []
  for await (const step of session.stream({ maxNewTokens: 3 })) steps.push(step.id)
  const longer = await m.generate(plain.ids, { maxNewTokens: 3 })
  t.deepEqual(steps, longer.newIds)
  t.deepEqual(session.ids, longer.ids)
  await session.dispose()
})

test('calls on one session apply in the order they were made', async (t) => {
  const m = await model
  const session = await m.session('One')
  const appends = [' two', ' three', ' four'].map((text) => session.append(text))
  const top = session.topK(1)
  await Promise.all(appends)
  t.is(session.text, 'One two three four')
  const [ours, theirs] = [(await top)[0], (await m.topK('One two three four', 1))[0]]
  t.is(ours.id, theirs.id, 'the top-k read after the appends, as they were made')
  t.true(Math.abs(ours.logprob - theirs.logprob) < 1e-4)
  await session.dispose()
})

test('bad input leaves the session unchanged; use after dispose is ERR_DISPOSED', async (t) => {
  const m = await model
  const session = await m.session('Hello')
  const ids = session.ids
  const logits = await session.logits()
  const rejects = async (call: Promise<unknown>, code: string) => {
    const err = await t.throwsAsync(call, { instanceOf: NexttokenError })
    t.is(err?.code, code, err?.message)
  }
  await rejects(session.append([50257]), 'ERR_TOKEN_OUT_OF_RANGE')
  await rejects(session.append(new Array(1024).fill(11)), 'ERR_CONTEXT_OVERFLOW')
  t.throws(() => session.truncate(-1), { instanceOf: NexttokenError })
  t.deepEqual(session.ids, ids)
  t.deepEqual(await session.logits(), logits)
  const empty = await m.session()
  await rejects(empty.logits(), 'ERR_INVALID_ARG')
  await rejects(empty.generate(), 'ERR_INVALID_ARG')
  await session.dispose()
  t.true(session.disposed)
  await rejects(session.append(' more'), 'ERR_DISPOSED')
  await rejects(session.fork(), 'ERR_DISPOSED')
  t.throws(() => session.ids, { instanceOf: NexttokenError })
})
