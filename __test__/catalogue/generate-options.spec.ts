// The catalogue of bad arguments, generate's options: every option with every kind of wrong
// value is ERR_INVALID_ARG (sampling options are tried with doSample, beam options with beams,
// since transformers ignores them otherwise), and so are callbacks and signals of the wrong kind.
import test from 'ava'

import { type GenerateOptions, Gpt2, NexttokenError } from '../../index'
import { TINY_MODEL } from '../helpers/fixtures'

const model = Gpt2.fromPretrained(TINY_MODEL)
const NOT_NUMBERS = ['1', 10n, Symbol('s'), {}, [], true, null]
const NOT_INTEGERS = [...NOT_NUMBERS, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]
const NOT_BOOLEANS = ['yes', 1, 0, 10n, Symbol('s'), {}, null]

const CASES: [keyof GenerateOptions, unknown[], GenerateOptions?][] = [
  ['maxLength', NOT_INTEGERS],
  ['maxNewTokens', [...NOT_INTEGERS, 0]],
  ['minLength', NOT_INTEGERS],
  ['minNewTokens', NOT_INTEGERS],
  ['noRepeatNgramSize', NOT_INTEGERS],
  ['seed', NOT_INTEGERS],
  ['padTokenId', [...NOT_INTEGERS, 50257]],
  [
    'topAlternatives',
    [...NOT_INTEGERS.filter((v) => !(v !== null && typeof v === 'object')), { k: -1 }, { k: 2, processed: 'yes' }],
  ],
  ['numReturnSequences', [...NOT_INTEGERS, 0]],
  ['repetitionPenalty', [...NOT_NUMBERS, 0, -1, Number.NaN]],
  ['temperature', [...NOT_NUMBERS, 0, -1, Number.NaN], { doSample: true }],
  ['topK', NOT_INTEGERS, { doSample: true }],
  ['topP', [...NOT_NUMBERS, 0, 1.5, Number.NaN], { doSample: true }],
  ['minP', [...NOT_NUMBERS, -0.1, 1.5, Number.NaN], { doSample: true }],
  ['typicalP', [...NOT_NUMBERS, 0, 1.5, Number.NaN], { doSample: true }],
  ['epsilonCutoff', [...NOT_NUMBERS, -0.1, 1, Number.NaN], { doSample: true }],
  ['etaCutoff', [...NOT_NUMBERS, -0.1, 1, Number.NaN], { doSample: true }],
  ['numBeams', [...NOT_INTEGERS, 0]],
  ['lengthPenalty', [...NOT_NUMBERS, Number.NaN, Number.POSITIVE_INFINITY], { numBeams: 2 }],
  ['earlyStopping', ['yes', 1, {}, null, 'NEVER'], { numBeams: 2 }],
  ['doSample', NOT_BOOLEANS],
  ['renormalizeLogits', NOT_BOOLEANS],
  ['outputScores', NOT_BOOLEANS],
  ['eosTokenId', ['1', 1.5, -1, 50257, [1, 'x'], [-1], 10n, {}]],
  ['forcedEosTokenId', ['1', 1.5, -1, 50257, [1, 'x'], 10n, {}]],
  ['suppressTokens', ['1', 5, [1.5], [-1], [50257], {}, null]],
  ['beginSuppressTokens', ['1', 5, [1.5], [-1], [50257], {}, null]],
  ['badWordsIds', ['1', [1], [[1.5]], [[]], [[50257]], {}, null]],
  ['sequenceBias', ['1', [[1], 2], [[[1], '2']], [[[50257], 1]], [[[1], Number.NaN]], [[[], 1]], {}, null]],
  [
    'logitBias',
    ['1', [1], { x: 1 }, { 1: '2' }, { 1: Number.NaN }, { 1: Number.POSITIVE_INFINITY }, { 50257: 1 }, null],
  ],
  ['stop', [5, [5], [''], ['\uD800'], {}, null]],
  ['stopStrings', [5, [5], [''], ['\uDFFF'], {}, null]],
  ['onToken', ['f', 5, {}, null]],
  ['signal', ['s', {}, new EventTarget(), null]],
]

for (const [option, values, base] of CASES) {
  test(`generate refuses every wrong ${option}`, async (t) => {
    const m = await model
    for (const value of values) {
      const options = { maxNewTokens: 2, ...base, [option]: value } as GenerateOptions
      const err = await t.throwsAsync(
        async () => m.generate('Hi', options),
        { instanceOf: NexttokenError },
        String(value),
      )
      t.is(err?.code, 'ERR_INVALID_ARG', `${option}: ${String(value)}: ${err?.message}`)
    }
  })
}

test('an onToken that throws rejects the call with its error and stops the generation', async (t) => {
  const m = await model
  let calls = 0
  const boom = new Error('boom')
  const err = await t.throwsAsync(
    m.generate('Hi', {
      maxNewTokens: 50,
      onToken: () => {
        calls++
        throw boom
      },
    }),
  )
  t.is(err, boom)
  t.true(calls >= 1)
  t.is((await m.nextToken('Hello')).id >= 0, true, 'the model still answers')
})
