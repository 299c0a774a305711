// stream() and onToken: per-token steps whose text deltas add up to the completion, top-k
// alternatives from the same forward pass, and early exit.
import test from 'ava'

import { Gpt2, type GenerateStep } from '../index'
import { TINY_MODEL } from './helpers/fixtures'

const model = Gpt2.fromPretrained(TINY_MODEL)

test('streamed steps equal generate, and text deltas concatenate to the completion', async (t) => {
  const m = await model
  const options = { maxNewTokens: 40, eosTokenId: null }
  const steps: GenerateStep[] = []
  const iterator = m.stream('Once upon a time, generative models', options)
  let next = await iterator.next()
  while (!next.done) {
    steps.push(next.value)
    next = await iterator.next()
  }
  const result = next.value
  const generated = await m.generate('Once upon a time, generative models', options)
  t.deepEqual(
    steps.map((s) => s.id),
    generated.newIds,
  )
  t.deepEqual(result.newIds, generated.newIds)
  t.is(steps.map((s) => s.text).join(''), generated.completion)
  for (const s of steps) {
    t.true(s.p > 0 && s.p <= 1)
    t.true(Math.abs(Math.log(s.p) - s.logprob) < 1e-5)
  }
})

test('text deltas never split a UTF-8 character: a character of several tokens arrives whole', async (t) => {
  const m = await model
  // '😀' is several byte-level tokens, the first ending inside the character (checked here, so
  // the test cannot pass without a split). sequenceBias makes greedy decoding emit exactly those
  // tokens in order, over and over: each later token is biased most right after the ones before
  // it, the first one otherwise (biases of 100s dwarf this model's logits, |x| < 15).
  const char = '😀'
  const ids = Array.from(m.tokenizer.encode(char))
  t.true(ids.length >= 2, `${char} is ${ids.length} token(s)`)
  t.true(m.tokenizer.decode([ids[0]]).includes('\uFFFD'), 'its first token ends inside the character')
  const sequenceBias = ids.map((_, k): [number[], number] => [ids.slice(0, k + 1), 100 * (k + 1)])
  const repeats = 3
  const options = { maxNewTokens: repeats * ids.length, eosTokenId: null, sequenceBias }
  const steps: GenerateStep[] = []
  for await (const step of m.stream('Smile:', options)) steps.push(step)
  t.deepEqual(
    steps.map((s) => s.id),
    Array.from({ length: repeats }, () => ids).flat(),
  )
  t.deepEqual(
    steps.map((s) => s.text),
    steps.map((_, i) => (i % ids.length === ids.length - 1 ? char : '')),
    'the partial tokens’ deltas are held back, the last one brings the whole character',
  )
  t.is(steps.map((s) => s.text).join(''), char.repeat(repeats))
})

test('sampled text deltas add up to the decoded completion', async (t) => {
  const m = await model
  // Sampling over the whole vocabulary draws byte-level tokens, some of which end inside a
  // character (and may never complete it: then the completion shows U+FFFD, as decode does).
  for (const prompt of ['日本語の', 'emoji 😀😀', 'Ünïcödé ']) {
    const steps: GenerateStep[] = []
    const options = { maxNewTokens: 40, eosTokenId: null, doSample: true, seed: 7, topK: 0 }
    for await (const step of m.stream(prompt, options)) steps.push(step)
    t.is(steps.map((s) => s.text).join(''), m.tokenizer.decode(steps.map((s) => s.id)), prompt)
  }
})

test('topAlternatives gives the top-k table at every step, consistent with topK()', async (t) => {
  const m = await model
  const prompt = Array.from(m.tokenizer.encode("I am learning about generative ai and LLM's"))
  const steps: GenerateStep[] = []
  for await (const step of m.stream(prompt, { maxNewTokens: 3, topAlternatives: 5 })) steps.push(step)
  const ids = [...prompt]
  for (const step of steps) {
    const expected = await m.topK(ids, 5)
    t.deepEqual(
      step.alternatives!.map((a) => a.id),
      expected.map((e) => e.id),
    )
    step.alternatives!.forEach((a, i) => {
      t.true(Math.abs(a.p - expected[i].p) < 1e-5)
    })
    t.is(step.alternatives![0].id, step.id) // greedy picks the best alternative
    t.is(step.alternatives![0].token, m.tokenizer.decode([step.id]))
    ids.push(step.id)
  }
})

test('onToken sees every token of generate, in order', async (t) => {
  const m = await model
  const seen: number[] = []
  const result = await m.generate('Hello', { maxNewTokens: 12, onToken: (s) => seen.push(s.id) })
  t.deepEqual(seen, result.newIds)
})

test('breaking out of a stream stops it, and the model stays usable', async (t) => {
  const m = await model
  let count = 0
  for await (const _ of m.stream('Hello', { maxNewTokens: 500, eosTokenId: null })) {
    if (++count === 3) break
  }
  t.is(count, 3)
  t.is((await m.generate('Hello', { maxNewTokens: 2 })).newIds.length, 2)
})
