import test from 'ava'

import { NexttokenError, Tokenizer } from '../index'
import { readGolden, TINY_MODEL } from './helpers/fixtures'
import { copyOfTinyModel } from './helpers/model-dirs'

interface TokenizationGolden {
  text: string
  ids: number[]
}

const goldens = readGolden<TokenizationGolden[]>('tokenization.json')
const NOTEBOOK_SENTENCE = "I am learning about generative ai and LLM's"

test('the notebook sentence encodes to the ids the notebook printed', async (t) => {
  const tokenizer = await Tokenizer.fromPretrained(TINY_MODEL)
  const ids = tokenizer.encode(NOTEBOOK_SENTENCE)
  t.true(ids instanceof Uint32Array)
  t.deepEqual(Array.from(ids), [40, 716, 4673, 546, 1152, 876, 257, 72, 290, 27140, 44, 338])
  t.is(tokenizer.decode(ids), NOTEBOOK_SENTENCE)
})

test('tokenization equals transformers on every golden string', async (t) => {
  const tokenizer = await Tokenizer.fromPretrained(TINY_MODEL)
  t.true(goldens.length >= 20)
  for (const { text, ids } of goldens) {
    t.deepEqual(Array.from(tokenizer.encode(text)), ids, JSON.stringify(text))
  }
})

test('decode(encode(s)) === s on every golden string', async (t) => {
  const tokenizer = await Tokenizer.fromPretrained(TINY_MODEL)
  for (const { text, ids } of goldens) {
    t.is(tokenizer.decode(ids), text, JSON.stringify(text))
  }
})

test('vocab.json + merges.txt alone give the same tokenizer as tokenizer.json', async (t) => {
  const dir = copyOfTinyModel(['tokenizer.json'])
  const tokenizer = await Tokenizer.fromPretrained(dir)
  t.is(tokenizer.vocabSize, 50257)
  for (const { text, ids } of goldens) {
    t.deepEqual(Array.from(tokenizer.encode(text)), ids, JSON.stringify(text))
    t.is(tokenizer.decode(ids), text)
  }
})

test('single tokens: decode, idToToken and tokenToId', async (t) => {
  const tokenizer = await Tokenizer.fromPretrained(TINY_MODEL)
  t.is(tokenizer.decode([13]), '.')
  t.is(tokenizer.decode([262]), ' the')
  t.is(tokenizer.idToToken(262), 'Ġthe')
  t.is(tokenizer.tokenToId('Ġthe'), 262)
  t.is(tokenizer.tokenToId('not a token at all'), undefined)
  t.is(tokenizer.decode([50256]), '<|endoftext|>')
  t.deepEqual(Array.from(tokenizer.encode('<|endoftext|>')), [50256])
  t.deepEqual(Array.from(tokenizer.encode('')), [])
})

test('bad ids are coded errors', async (t) => {
  const tokenizer = await Tokenizer.fromPretrained(TINY_MODEL)
  const outOfRange = t.throws(() => tokenizer.decode([50257]), { instanceOf: NexttokenError })
  t.is(outOfRange?.code, 'ERR_TOKEN_OUT_OF_RANGE')
  t.is(t.throws(() => tokenizer.decode([-1]))?.code, 'ERR_TOKEN_OUT_OF_RANGE')
  t.is(t.throws(() => tokenizer.idToToken(50257))?.code, 'ERR_TOKEN_OUT_OF_RANGE')
  t.is(t.throws(() => tokenizer.decode([1.5]))?.code, 'ERR_INVALID_ARG')
  t.is(t.throws(() => tokenizer.encode(42 as unknown as string))?.code, 'ERR_INVALID_ARG')
  t.is(tokenizer.decode([40]), 'I') // still usable afterwards
})

test('a directory without a tokenizer is ERR_MODEL_NOT_FOUND', async (t) => {
  const dir = copyOfTinyModel(['tokenizer.json', 'vocab.json', 'merges.txt'])
  const err = await t.throwsAsync(Tokenizer.fromPretrained(dir), { instanceOf: NexttokenError })
  t.is(err?.code, 'ERR_MODEL_NOT_FOUND')
  t.regex(err!.message, /tokenizer\.json/)
})
