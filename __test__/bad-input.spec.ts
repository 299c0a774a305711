// Inputs found to misbehave (issue 15's list): each is now a coded error, and the process lives.
import { execFileSync } from 'node:child_process'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import test, { type ExecutionContext } from 'ava'

import { type ErrorCode, Gpt2, NexttokenError } from '../index'
import { TINY_MODEL } from './helpers/fixtures'
import { copyOfTinyModel } from './helpers/model-dirs'

const model = Gpt2.fromPretrained(TINY_MODEL)

async function rejects(t: ExecutionContext, call: () => Promise<unknown>, code: ErrorCode, message?: RegExp) {
  const err = await t.throwsAsync(call, { instanceOf: NexttokenError })
  t.is(err?.code, code, err?.message)
  if (message) t.regex(err?.message ?? '', message)
}

test('a FIFO where a file should be is refused, not waited on forever', async (t) => {
  for (const file of ['config.json', 'model.safetensors', 'generation_config.json']) {
    const dir = copyOfTinyModel()
    rmSync(join(dir, file))
    execFileSync('mkfifo', [join(dir, file)])
    await rejects(t, () => Gpt2.fromPretrained(dir), 'ERR_MODEL_INVALID', /not a regular file/)
  }
})

test('a tokenizer that lacks the model eos is refused at load, naming both', async (t) => {
  const dir = copyOfTinyModel(['tokenizer.json', 'vocab.json', 'merges.txt'])
  const vocab = Object.fromEntries(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'].map((c, i) => [c, i]))
  writeFileSync(join(dir, 'vocab.json'), JSON.stringify(vocab))
  writeFileSync(join(dir, 'merges.txt'), '#version: 0.2\n')
  await rejects(t, () => Gpt2.fromPretrained(dir), 'ERR_MODEL_INVALID', /not in the tokenizer, which has 10 tokens/)
})

test('options that are not objects, and arguments of the wrong type, are ERR_INVALID_ARG', async (t) => {
  const m = await model
  const calls: [string, () => Promise<unknown>][] = [
    ['fromPretrained(dir, null)', () => Gpt2.fromPretrained(TINY_MODEL, null as never)],
    ["fromPretrained(dir, 'cpu')", () => Gpt2.fromPretrained(TINY_MODEL, 'cpu' as never)],
    ['device: 123', () => Gpt2.fromPretrained(TINY_MODEL, { device: 123 as never })],
    ["logits('Hi', null)", () => m.logits('Hi', null as never)],
    ["generateBatch(['Hi'], 'fast')", () => m.generateBatch(['Hi'], 'fast' as never)],
    ['generateBatch([, "Hi"])', () => m.generateBatch([undefined as never, 'Hi'], { maxNewTokens: 2 })],
    ['an array-like with length -1', () => m.logits({ length: -1 } as never)],
    ['an array-like with length 1.5', () => m.logits({ length: 1.5, 0: 1 } as never)],
    ['a stop string with a lone surrogate', () => m.generate('Hi', { maxNewTokens: 2, stop: ['\uD800'] })],
    ['stopStrings with a lone low surrogate', () => m.generate('Hi', { maxNewTokens: 2, stopStrings: ['a\uDC00'] })],
  ]
  for (const [name, call] of calls) {
    const err = await t.throwsAsync(call, { instanceOf: NexttokenError }, name)
    t.is(err?.code, 'ERR_INVALID_ARG', `${name}: ${err?.message}`)
  }
  t.is((await m.nextToken('Hello')).id >= 0, true, 'the model still answers')
})
