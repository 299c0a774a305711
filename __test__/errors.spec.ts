// Bad input of every kind is a coded Error, and the process keeps working afterwards.
import { writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import test, { type ExecutionContext } from 'ava'

import { type ErrorCode, Gpt2, NexttokenError } from '../index'
import { TINY_MODEL } from './helpers/fixtures'
import { copyOfTinyModel, tinyModelWithFile, tinyModelWithWeights } from './helpers/model-dirs'

const model = Gpt2.fromPretrained(TINY_MODEL)

async function rejectsWith(t: ExecutionContext, promise: Promise<unknown>, code: ErrorCode, message?: RegExp) {
  const err = await t.throwsAsync(promise, { instanceOf: NexttokenError })
  t.is(err?.code, code, err?.message)
  if (message) t.regex(err!.message, message)
  // Node is alive and the shared model still answers.
  t.is((await (await model).nextToken('Hello')).id >= 0, true)
}

test('a repo id that is not in the cache, offline, is ERR_MODEL_NOT_FOUND saying where we looked', async (t) => {
  const cacheDir = join(tmpdir(), `nexttoken-empty-cache-${process.pid}`)
  const loading = Gpt2.fromPretrained('gpt2', { offline: true, cacheDir })
  await rejectsWith(
    t,
    loading,
    'ERR_MODEL_NOT_FOUND',
    new RegExp(`gpt2: config.json .* not in the cache at ${cacheDir}`),
  )
})

test('a missing directory is ERR_MODEL_NOT_FOUND', async (t) => {
  await rejectsWith(t, Gpt2.fromPretrained('/no/such/dir'), 'ERR_MODEL_NOT_FOUND', /\/no\/such\/dir/)
})

test('a directory without model.safetensors is ERR_MODEL_NOT_FOUND', async (t) => {
  const dir = copyOfTinyModel(['model.safetensors'])
  await rejectsWith(t, Gpt2.fromPretrained(dir), 'ERR_MODEL_NOT_FOUND', /model\.safetensors/)
})

test('a directory without config.json is ERR_MODEL_NOT_FOUND', async (t) => {
  const dir = copyOfTinyModel(['config.json'])
  await rejectsWith(t, Gpt2.fromPretrained(dir), 'ERR_MODEL_NOT_FOUND', /config\.json/)
})

test('a truncated safetensors file is ERR_MODEL_INVALID', async (t) => {
  const dir = copyOfTinyModel()
  const path = join(dir, 'model.safetensors')
  const bytes = require('node:fs').readFileSync(path) as Buffer
  writeFileSync(path, bytes.subarray(0, Math.floor(bytes.length / 2)))
  await rejectsWith(t, Gpt2.fromPretrained(dir), 'ERR_MODEL_INVALID', /safetensors/)
})

test('a garbage safetensors file is ERR_MODEL_INVALID', async (t) => {
  await rejectsWith(
    t,
    Gpt2.fromPretrained(tinyModelWithFile('model.safetensors', 'garbage, not tensors')),
    'ERR_MODEL_INVALID',
  )
  const hugeHeader = Buffer.alloc(16)
  hugeHeader.writeBigUInt64LE(1n << 40n)
  await rejectsWith(t, Gpt2.fromPretrained(tinyModelWithFile('model.safetensors', hugeHeader)), 'ERR_MODEL_INVALID')
})

test('a tensor of the wrong shape is ERR_MODEL_INVALID naming the tensor', async (t) => {
  const dir = tinyModelWithWeights((tensors) => {
    const wpe = tensors.get('transformer.wpe.weight')!
    tensors.set('transformer.wpe.weight', { ...wpe, shape: [wpe.shape[1], wpe.shape[0]] })
    return tensors
  })
  await rejectsWith(t, Gpt2.fromPretrained(dir), 'ERR_MODEL_INVALID', /wpe\.weight.*shape/)
})

test('a missing tensor is ERR_MODEL_INVALID naming the tensor', async (t) => {
  const dir = tinyModelWithWeights((tensors) => {
    tensors.delete('transformer.h.1.mlp.c_fc.bias')
    return tensors
  })
  await rejectsWith(t, Gpt2.fromPretrained(dir), 'ERR_MODEL_INVALID', /h\.1\.mlp\.c_fc\.bias.*missing/)
})

test('a config that is not GPT-2, or not JSON, is ERR_MODEL_INVALID', async (t) => {
  const config = JSON.parse(require('node:fs').readFileSync(join(TINY_MODEL, 'config.json'), 'utf8'))
  const llama = tinyModelWithFile('config.json', JSON.stringify({ ...config, model_type: 'llama' }))
  await rejectsWith(t, Gpt2.fromPretrained(llama), 'ERR_MODEL_INVALID', /llama/)
  await rejectsWith(t, Gpt2.fromPretrained(tinyModelWithFile('config.json', '{ nope')), 'ERR_MODEL_INVALID')
})

test('token ids outside the vocabulary are ERR_TOKEN_OUT_OF_RANGE', async (t) => {
  const m = await model
  await rejectsWith(t, m.logits([40, 50257]), 'ERR_TOKEN_OUT_OF_RANGE', /50257/)
  await rejectsWith(t, m.topK([-3]), 'ERR_TOKEN_OUT_OF_RANGE')
  await rejectsWith(t, m.nextToken([2 ** 32]), 'ERR_TOKEN_OUT_OF_RANGE')
})

test('empty or malformed input is ERR_INVALID_ARG', async (t) => {
  const m = await model
  await rejectsWith(t, m.logits(''), 'ERR_INVALID_ARG', /empty/)
  await rejectsWith(t, m.logits([]), 'ERR_INVALID_ARG', /empty/)
  await rejectsWith(t, m.logits([1.5]), 'ERR_INVALID_ARG')
  await rejectsWith(t, m.logits(null as unknown as string), 'ERR_INVALID_ARG')
  await rejectsWith(t, m.logits('Hi', { positions: 'first' as 'last' }), 'ERR_INVALID_ARG')
  await rejectsWith(t, m.topK('Hi', 0), 'ERR_INVALID_ARG')
  await rejectsWith(t, m.topK('Hi', 2.5), 'ERR_INVALID_ARG')
})

test('input longer than n_positions is ERR_CONTEXT_OVERFLOW', async (t) => {
  const m = await model
  const ids = Array.from({ length: m.config.nPositions + 1 }, (_, i) => i)
  await rejectsWith(t, m.logits(ids), 'ERR_CONTEXT_OVERFLOW', /1025.*1024/)
  t.is((await m.logits(ids.slice(1))).length, m.config.vocabSize) // exactly n_positions is fine
})

test('use after dispose is ERR_DISPOSED; a call in flight still completes', async (t) => {
  const m = await Gpt2.fromPretrained(TINY_MODEL)
  const inFlight = m.logits(Array.from({ length: 512 }, (_, i) => i))
  await m.dispose()
  t.true(m.disposed)
  t.is((await inFlight).length, m.config.vocabSize)
  await rejectsWith(t, m.logits('Hello'), 'ERR_DISPOSED')
  await rejectsWith(t, m.topK('Hello'), 'ERR_DISPOSED')
  await t.notThrowsAsync(m.dispose()) // disposing twice is harmless
  t.is(m.tokenizer.decode([40]), 'I') // the tokenizer is independent of the weights
})

test('Symbol.asyncDispose disposes', async (t) => {
  const m = await Gpt2.fromPretrained(TINY_MODEL)
  await m[Symbol.asyncDispose]()
  t.true(m.disposed)
})
