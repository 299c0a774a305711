// generate(): greedy output token for token equal to transformers' generate, HF length
// semantics, stop strings, seeded sampling, and consistency of the KV cache.
import test from 'ava'

import { Gpt2 } from '../index'
import { readGolden, TINY_MODEL } from './helpers/fixtures'

interface GenerateGolden {
  name: string
  text?: string
  promptIds: number[]
  options: { maxLength?: number; maxNewTokens?: number; eosTokenId?: number | number[] }
  ids: number[]
  newIds: number[]
  text_out: string
}

const goldens = readGolden<GenerateGolden[]>('generate.json')
const model = Gpt2.fromPretrained(TINY_MODEL)

test('greedy generate equals transformers token for token on every golden', async (t) => {
  const m = await model
  t.true(goldens.length >= 4)
  for (const g of goldens) {
    const result = await m.generate(g.text ?? g.promptIds, g.options)
    t.deepEqual(result.ids, g.ids, g.name)
    t.deepEqual(result.newIds, g.newIds, g.name)
    t.is(result.text, g.text_out, g.name)
    t.is(result.completion, m.tokenizer.decode(g.newIds), g.name)
  }
})

test("the notebook's max_length=100 counts the prompt", async (t) => {
  const m = await model
  const result = await m.generate('Once upon a time, generative models', { maxLength: 100 })
  t.is(result.ids.length, 100)
  t.is(result.stopReason, 'length')
  t.is(result.timings.promptTokens, 8)
  t.is(result.timings.generatedTokens, 92)
})

test('a golden that hits eos stops there with stopReason eos', async (t) => {
  const m = await model
  const g = goldens.find((x) => x.name.includes('eos'))
  if (!g) return t.fail('no eos golden')
  const result = await m.generate(g.promptIds, g.options)
  t.is(result.stopReason, 'eos')
  t.is(result.newIds.at(-1), g.options.eosTokenId)
  t.deepEqual(result.ids, g.ids)
})

test('filling the context ends with stopReason context, never a crash', async (t) => {
  const m = await model
  const g = goldens.find((x) => x.name.includes('context'))
  if (!g) return t.fail('no context golden')
  // Ask for more than fits: generation stops at n_positions with the tokens transformers made.
  const result = await m.generate(g.promptIds, { maxNewTokens: 200 })
  t.is(result.stopReason, 'context')
  t.is(result.ids.length, m.config.nPositions)
  t.deepEqual(result.ids, g.ids)
  // A prompt that already fills the context generates nothing.
  const full = await m.generate(result.ids, { maxNewTokens: 5 })
  t.is(full.newIds.length, 0)
  t.is(full.stopReason, 'context')
})

test('maxNewTokens wins over maxLength; the default is 20 new tokens', async (t) => {
  const m = await model
  t.is((await m.generate('Hello there', { maxLength: 5, maxNewTokens: 7 })).newIds.length, 7)
  t.is((await m.generate('Hello there', { eosTokenId: null })).newIds.length, 20)
})

test('eosTokenId null disables eos; a configured eos stops', async (t) => {
  const m = await model
  const free = await m.generate('The cat', { maxNewTokens: 12, eosTokenId: null })
  const eos = free.newIds[4]
  const stopped = await m.generate('The cat', { maxNewTokens: 12, eosTokenId: eos })
  t.is(stopped.stopReason, 'eos')
  t.deepEqual(stopped.newIds, free.newIds.slice(0, free.newIds.indexOf(eos) + 1))
})

test('the KV cache gives the same tokens as re-running the whole sequence', async (t) => {
  const m = await model
  const prompt = Array.from(m.tokenizer.encode('In the beginning there was'))
  const cached = await m.generate(prompt, { maxNewTokens: 10, eosTokenId: null })
  const ids = [...prompt]
  for (let i = 0; i < 10; i++) ids.push((await m.nextToken(ids)).id)
  t.deepEqual(cached.ids, ids)
})

test('stop strings end the result before the stop string', async (t) => {
  const m = await model
  const free = await m.generate('Once upon a time, generative models', { maxNewTokens: 20, eosTokenId: null })
  // Stop at the second occurrence of a token's text that repeats, or at a mid-completion slice.
  const cut = Math.floor(free.completion.length / 2)
  const stop = free.completion.slice(cut, cut + 4)
  const stopped = await m.generate('Once upon a time, generative models', { maxNewTokens: 20, stop })
  const at = free.completion.indexOf(stop)
  t.is(stopped.stopReason, 'stop')
  t.is(stopped.completion, free.completion.slice(0, at))
  t.is(stopped.text, `Once upon a time, generative models${stopped.completion}`)
  t.false(stopped.completion.includes(stop))
})

test('the same seed gives the same sample; topK 1 sampling is greedy', async (t) => {
  const m = await model
  const options = { doSample: true, maxNewTokens: 24, seed: 1234, temperature: 1.5, topK: 0, eosTokenId: null }
  const a = await m.generate('Hello', options)
  const b = await m.generate('Hello', options)
  const c = await m.generate('Hello', { ...options, seed: 99 })
  t.deepEqual(a.newIds, b.newIds)
  t.notDeepEqual(a.newIds, c.newIds)
  const greedy = await m.generate('Hello', { maxNewTokens: 24, eosTokenId: null })
  const topOne = await m.generate('Hello', { ...options, topK: 1 })
  t.deepEqual(topOne.newIds, greedy.newIds)
})

test('repetitionPenalty and noRepeatNgramSize change greedy output as transformers defines them', async (t) => {
  const m = await model
  const repeatedBigrams = (ids: number[]) => {
    const seen = new Set<string>()
    let repeats = 0
    for (let i = 0; i + 1 < ids.length; i++) {
      const key = `${ids[i]},${ids[i + 1]}`
      if (seen.has(key)) repeats++
      seen.add(key)
    }
    return repeats
  }
  // The notebook's complaint: greedy decoding loops. Take the prompt whose greedy run repeats most.
  const options = { maxNewTokens: 60, eosTokenId: null }
  const runs = await Promise.all(
    ['Hello', 'The cat sat on the mat, and the cat sat on the', 'The meaning of life is', 'Once upon a time'].map(
      async (prompt) => ({ prompt, plain: await m.generate(prompt, options) }),
    ),
  )
  const { prompt, plain } = runs.reduce((a, b) => (repeatedBigrams(b.plain.ids) > repeatedBigrams(a.plain.ids) ? b : a))
  t.true(repeatedBigrams(plain.ids) > 3, 'precondition: plain greedy repeats itself')
  const noRepeat = await m.generate(prompt, { ...options, noRepeatNgramSize: 2 })
  t.is(repeatedBigrams(noRepeat.ids), 0)
  const penalised = await m.generate(prompt, { ...options, repetitionPenalty: 5 })
  t.true(new Set(penalised.newIds).size > new Set(plain.newIds).size)
})
