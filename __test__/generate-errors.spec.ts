// Invalid generate/stream options and inputs are coded errors; disposal is respected.
import test from 'ava'

import { type GenerateOptions, Gpt2, NexttokenError } from '../index'
import { TINY_MODEL } from './helpers/fixtures'

const model = Gpt2.fromPretrained(TINY_MODEL)

const INVALID: [string, GenerateOptions][] = [
  ['negative maxLength', { maxLength: -1 }],
  ['fractional maxNewTokens', { maxNewTokens: 2.5 }],
  ['NaN temperature', { doSample: true, temperature: NaN }],
  ['zero temperature', { doSample: true, temperature: 0 }],
  ['topP 0', { doSample: true, topP: 0 }],
  ['topP above 1', { doSample: true, topP: 1.5 }],
  ['negative topK', { topK: -1 }],
  ['minP above 1 when sampling', { doSample: true, minP: 2 }],
  ['zero maxNewTokens', { maxNewTokens: 0 }],
  ['a bad id in an eosTokenId list', { eosTokenId: [50256, -1] }],
  ['an eosTokenId list outside the vocabulary', { eosTokenId: [50256, 60000] }],
  ['zero repetitionPenalty', { repetitionPenalty: 0 }],
  ['negative noRepeatNgramSize', { noRepeatNgramSize: -2 }],
  ['negative seed', { seed: -1 }],
  ['empty stop string', { stop: [''] }],
  ['non-string stop', { stop: [42 as unknown as string] }],
  ['eosTokenId outside the vocabulary', { eosTokenId: 60000 }],
  ['string eosTokenId', { eosTokenId: 'x' as unknown as number }],
  ['non-function onToken', { onToken: 'x' as unknown as () => void }],
  ['non-signal signal', { signal: {} as AbortSignal }],
]

for (const [name, options] of INVALID) {
  test(`${name} is ERR_INVALID_ARG for generate and stream`, async (t) => {
    const m = await model
    const err = await t.throwsAsync(m.generate('Hello', options), { instanceOf: NexttokenError })
    t.is(err?.code, 'ERR_INVALID_ARG', err?.message)
    const streamErr = await t.throwsAsync(m.stream('Hello', options).next(), { instanceOf: NexttokenError })
    t.is(streamErr?.code, 'ERR_INVALID_ARG')
  })
}

test('bad prompts are coded errors', async (t) => {
  const m = await model
  t.is((await t.throwsAsync(m.generate([50257])))?.['code' as never], 'ERR_TOKEN_OUT_OF_RANGE')
  const tooLong = Array.from({ length: 1025 }, () => 1)
  t.is((await t.throwsAsync(m.generate(tooLong)))?.['code' as never], 'ERR_CONTEXT_OVERFLOW')
})

test('generate after dispose is ERR_DISPOSED; a running generation finishes', async (t) => {
  const m = await Gpt2.fromPretrained(TINY_MODEL)
  const running = m.generate('Hello', { maxNewTokens: 50, eosTokenId: null })
  await m.dispose()
  t.is((await running).newIds.length, 50)
  const err = await t.throwsAsync(m.generate('Hello'), { instanceOf: NexttokenError })
  t.is(err?.code, 'ERR_DISPOSED')
})
