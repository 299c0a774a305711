// Every logits processor of transformers' generate() from JS, against transformers' goldens:
// processed scores per step (outputScores), stop strings with transformers' meaning, logitBias as
// JS users spell it, alternatives under the processed distribution, and the values refused.
// (Each processor's output row is compared with transformers' in `cargo test`.)
import test, { type ExecutionContext } from 'ava'

import { Gpt2, NexttokenError } from '../index'
import { readGolden, TINY_MODEL } from './helpers/fixtures'

interface ScoresGolden {
  name: string
  promptIds: number[]
  options: Record<string, unknown>
  sampled: boolean
  newIds: number[]
  scores: number[]
}

interface StopStringsGolden {
  name: string
  promptIds: number[]
  stopStrings: string[]
  maxNewTokens: number
  newIds: number[]
  textOut: string
}

const model = Gpt2.fromPretrained(TINY_MODEL)
/** Processed log-probabilities agree with transformers to this (logits agree to ~1e-5). */
const SCORE_TOLERANCE = 1e-4

for (const g of readGolden<ScoresGolden[]>('scores.json').filter((g) => !g.sampled)) {
  test(`greedy ${g.name}: the same tokens and processed scores as transformers' output_scores`, async (t) => {
    const m = await model
    const options = { ...g.options, outputScores: true }
    const result = await m.generate(g.promptIds, options)
    t.deepEqual(result.newIds, g.newIds)
    t.is(result.scores!.length, g.scores.length)
    result.scores!.forEach((score, i) => {
      t.true(Math.abs(score - g.scores[i]) <= SCORE_TOLERANCE, `step ${i}: ${score} vs ${g.scores[i]}`)
    })
    const streamed = []
    for await (const step of m.stream(g.promptIds, options)) streamed.push(step.score)
    t.deepEqual(streamed, result.scores, 'each step carries its score')
  })
}

test('without outputScores nothing extra is returned; without processors the score is the logprob', async (t) => {
  const m = await model
  const plain = await m.generate('The meaning of life is', { maxNewTokens: 3 })
  t.false('scores' in plain)
  const steps = []
  for await (const step of m.stream('The meaning of life is', { maxNewTokens: 3, outputScores: true })) steps.push(step)
  steps.forEach((step) => {
    t.true(Math.abs(step.score! - step.logprob) < 1e-6)
  })
})

for (const g of readGolden<StopStringsGolden[]>('stop-strings.json')) {
  test(`stopStrings ${g.name} ${JSON.stringify(g.stopStrings)}: stops where transformers stops, keeping the string`, async (t) => {
    const m = await model
    const result = await m.generate(g.promptIds, { maxNewTokens: g.maxNewTokens, stopStrings: g.stopStrings })
    t.deepEqual(result.newIds, g.newIds)
    t.is(result.text, g.textOut)
    t.is(result.stopReason, 'stop')
  })
}

test('stop (cut before the string, searched in the completion) and stopStrings keep their own meanings', async (t) => {
  const m = await model
  const g = readGolden<StopStringsGolden[]>('stop-strings.json').find((g) => g.name === 'from-the-prompt')!
  // The string starts in the prompt: stop, which looks at the completion only, never sees it.
  const stop = await m.generate(g.promptIds, { maxNewTokens: 5, stop: g.stopStrings })
  t.is(stop.newIds.length, 5)
  t.is(stop.stopReason, 'length')
})

test('logitBias is the one-token sequenceBias, keyed by id', async (t) => {
  const m = await model
  const prompt = 'The weather today is'
  const plain = await m.generate(prompt, { maxNewTokens: 4 })
  const first = plain.newIds[0]
  const biased = await m.generate(prompt, { maxNewTokens: 4, logitBias: { [first]: -100 } })
  const sequence = await m.generate(prompt, { maxNewTokens: 4, sequenceBias: [[[first], -100]] })
  t.not(biased.newIds[0], first)
  t.deepEqual(biased.newIds, sequence.newIds)
  const banned = await m.generate(prompt, { maxNewTokens: 4, logitBias: { [first]: -Infinity }, outputScores: true })
  t.deepEqual(banned.newIds, biased.newIds)
  // The other tokens' shares grow by what the banned one had: the processed score says so.
  t.true(banned.scores![0] > (await m.topK(prompt, 2))[1].logprob)
})

test('topAlternatives ranks the model distribution, or the processed one with processed: true', async (t) => {
  const m = await model
  const prompt = 'The weather today is'
  const options = { maxNewTokens: 1, doSample: true, seed: 1, topK: 3, temperature: 0.5 }
  const [raw] = (await collect(m, prompt, { ...options, topAlternatives: 5 })).map((s) => s.alternatives!)
  const [processed] = (await collect(m, prompt, { ...options, topAlternatives: { k: 5, processed: true } })).map(
    (s) => s.alternatives!,
  )
  t.deepEqual(raw, await m.topK(prompt, 5))
  t.is(processed.length, 3, 'top-k 3 left three tokens')
  t.deepEqual(
    processed.map((a) => a.id),
    raw.slice(0, 3).map((a) => a.id),
  )
  const total = processed.reduce((sum, a) => sum + a.p, 0)
  t.true(Math.abs(total - 1) < 1e-5, `processed probabilities sum to 1: ${total}`)
  t.true(processed[0].p > raw[0].p, 'temperature 0.5 sharpens')
})

async function collect(m: Gpt2, prompt: string, options: Parameters<Gpt2['stream']>[1]) {
  const steps = []
  for await (const step of m.stream(prompt, options)) steps.push(step)
  return steps
}

test('processors change greedy choices: begin-suppressed, suppressed, banned and held-back tokens are not generated', async (t) => {
  const m = await model
  const prompt = 'The weather today is'
  const plain = (await m.generate(prompt, { maxNewTokens: 6 })).newIds
  t.not((await m.generate(prompt, { maxNewTokens: 6, beginSuppressTokens: [plain[0]] })).newIds[0], plain[0])
  t.false(
    (await m.generate(prompt, { maxNewTokens: 6, suppressTokens: [plain[0], plain[1]] })).newIds.includes(plain[1]),
  )
  t.not((await m.generate(prompt, { maxNewTokens: 6, badWordsIds: [[plain[0], plain[1]]] })).newIds[1], plain[1])
  // eos = the first token: minNewTokens holds it back for 3 tokens; forcedEosTokenId ends on it.
  const held = await m.generate(prompt, { maxNewTokens: 6, eosTokenId: plain[0], minNewTokens: 3 })
  t.false(held.newIds.slice(0, 3).includes(plain[0]))
  const forced = await m.generate(prompt, { maxNewTokens: 6, forcedEosTokenId: 50256 })
  t.deepEqual(forced.newIds.slice(0, 5), plain.slice(0, 5))
  t.is(forced.newIds[5], 50256)
})

async function rejects(t: ExecutionContext, call: Promise<unknown>, message: RegExp) {
  const err = await t.throwsAsync(call, { instanceOf: NexttokenError })
  t.is(err?.code, 'ERR_INVALID_ARG', err?.message)
  t.regex(err!.message, message)
}

test('bad processor options are ERR_INVALID_ARG naming the option', async (t) => {
  const m = await model
  const bad: [object, RegExp][] = [
    [{ badWordsIds: [[-1]] }, /badWordsIds/],
    [{ badWordsIds: [[]] }, /non-empty/],
    [{ badWordsIds: [1, 2] }, /badWordsIds/],
    [{ sequenceBias: [[1], 2] }, /sequenceBias/],
    [{ sequenceBias: [[[1], Number.NaN]] }, /finite number or -Infinity/],
    [{ logitBias: { abc: 1 } }, /logitBias: 'abc'/],
    [{ logitBias: { 5: '1' } }, /logitBias/],
    [{ logitBias: { 5: Infinity } }, /finite number or -Infinity/],
    [{ suppressTokens: [99999999] }, /suppressTokens: token 99999999 is outside the vocabulary/],
    [{ forcedEosTokenId: 7, suppressTokens: [7] }, /forcedEosTokenId is also in suppressTokens/],
    [{ doSample: true, typicalP: 0 }, /typicalP must be in \(0, 1\]/],
    [{ doSample: true, epsilonCutoff: 1 }, /epsilonCutoff must be in \[0, 1\)/],
    [{ doSample: true, etaCutoff: -0.1 }, /etaCutoff must be in \[0, 1\)/],
    [{ minNewTokens: 1.5 }, /minNewTokens must be a non-negative integer/],
    [{ renormalizeLogits: 'yes' }, /renormalizeLogits must be a boolean/],
    [{ outputScores: 1 }, /outputScores must be a boolean/],
    [{ topAlternatives: { processed: true } }, /topAlternatives needs k/],
    [{ stopStrings: [''] }, /stopStrings must not be empty/],
    [{ stopStrings: [3] }, /stopStrings must be a string or an array of strings/],
    [{ exponentialDecayLengthPenalty: 1.5 }, /exponentialDecayLengthPenalty must be \[startIndex, decayFactor\]/],
    [{ exponentialDecayLengthPenalty: [-1, 1.5] }, /startIndex must be a non-negative integer/],
    [{ exponentialDecayLengthPenalty: [2, Number.NaN] }, /decay factor must be a finite number; got NaN/],
  ]
  for (const [options, message] of bad) await rejects(t, m.generate('Hi', { maxNewTokens: 2, ...options }), message)
})

test('options that leave no token at all fail with ERR_INVALID_ARG instead of picking one', async (t) => {
  const m = await model
  const everything = Array.from({ length: m.config.vocabSize }, (_, id) => id)
  await rejects(
    t,
    m.generate('Hi', { maxNewTokens: 2, suppressTokens: everything }),
    /filtered out every token at step 1/,
  )
})
