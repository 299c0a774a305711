// The catalogue of bad arguments, model calls: every public call with every kind of wrong
// value, each a coded NexttokenError, the model still answering afterwards.
import test from 'ava'

import { Gpt2, NexttokenError } from '../../index'
import { TINY_MODEL } from '../helpers/fixtures'

const model = Gpt2.fromPretrained(TINY_MODEL)

/** Values of every JS kind that are not what an argument wants. */
const WRONG = [
  null,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  -1,
  1.5,
  2 ** 53,
  10n,
  Symbol('x'),
  {},
  [],
  () => {},
  true,
  '',
]

const INPUTS: [string, unknown][] = [
  ['null', null],
  ['a number', 42],
  ['a BigInt', 10n],
  ['a symbol', Symbol('s')],
  ['an object', { a: 1 }],
  ['ids with NaN', [1, Number.NaN]],
  ['ids with a float', [1, 2.5]],
  ['ids with -1', [-1]],
  ['ids past the vocabulary', [50257]],
  ['ids past 2^32', [2 ** 32]],
  ['a Float32Array', new Float32Array([1.5])],
  ['an Int32Array with -1', new Int32Array([-1])],
  ['a BigInt64Array', new BigInt64Array([1n])],
  ['an array-like with length -1', { length: -1 }],
  ['an array-like with a NaN length', { length: Number.NaN }],
  ['an empty array', []],
  ['an empty string', ''],
  ['1025 ids', new Array(1025).fill(11)],
]

for (const [name, input] of INPUTS) {
  test(`every model call refuses ${name} as input`, async (t) => {
    const m = await model
    const calls = {
      logits: () => m.logits(input as never),
      probabilities: () => m.probabilities(input as never),
      topK: () => m.topK(input as never),
      nextToken: () => m.nextToken(input as never),
      score: () => m.score(input as never),
    }
    for (const [call, run] of Object.entries(calls)) {
      const err = await t.throwsAsync(async () => run(), { instanceOf: NexttokenError }, `${call}(${name})`)
      t.regex(err?.code ?? '', /^ERR_/, `${call}(${name})`)
    }
  })
}

test('topK and score refuse every wrong k (a k past the vocabulary is capped, not wrong)', async (t) => {
  const m = await model
  t.is((await m.topK('Hi', 2 ** 53)).length, m.config.vocabSize)
  for (const k of WRONG.filter((v) => v !== null && v !== 2 ** 53)) {
    await t.throwsAsync(async () => m.topK('Hi', k as never), { instanceOf: NexttokenError }, String(typeof k))
    if (typeof k !== 'object')
      await t.throwsAsync(async () => m.score('Hello world', { topK: k as never }), { instanceOf: NexttokenError })
  }
})

test('logits refuses every wrong positions value and options that are not objects', async (t) => {
  const m = await model
  for (const positions of [...WRONG, 'first', 'ALL']) {
    await t.throwsAsync(async () => m.logits('Hi', { positions: positions as never }), { instanceOf: NexttokenError })
  }
  for (const options of [null, 'last', 5, []]) {
    await t.throwsAsync(async () => m.logits('Hi', options as never), { instanceOf: NexttokenError })
  }
})

test('the tokenizer refuses every wrong argument synchronously, with a code', async (t) => {
  const m = await model
  const tokenizer = m.tokenizer
  for (const value of [null, undefined, 5, 10n, Symbol('s'), {}, [], true]) {
    t.throws(() => tokenizer.encode(value as never), { instanceOf: NexttokenError })
    t.throws(() => tokenizer.tokenToId(value as never), { instanceOf: NexttokenError })
  }
  for (const value of [null, -1, 1.5, Number.NaN, 50257, 2 ** 32, '1', 10n]) {
    t.throws(() => tokenizer.idToToken(value as never), { instanceOf: NexttokenError })
    t.throws(() => tokenizer.decode([value] as never), { instanceOf: NexttokenError })
  }
  t.is((await m.nextToken('Hello')).id >= 0, true, 'the model still answers')
})
