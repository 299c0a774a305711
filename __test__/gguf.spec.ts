// GGUF files (llama.cpp's format): the fixtures written by scripts/make_gguf_fixture.py from
// tiny-gpt2 load by path or as a directory's only .gguf file, report their own type, give the
// logits of the safetensors model of the same numbers, generate; damaged files are coded errors.
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'

import { type Dtype, Gpt2, Tokenizer } from '../index'
import { FIXTURES, maxAbsDiff, TINY_MODEL } from './helpers/fixtures'

const PROMPT = "I am learning about generative ai and LLM's"

// Each file, the dtype it is held in, and the safetensors model holding the same numbers (the
// fixtures' quantizers are llama.cpp's reference ones, as ours are): the Rust test measured 0.
const files: [string, Dtype][] = [
  ['tiny-gpt2-f16.gguf', 'fp16'],
  ['tiny-gpt2-q8_0.gguf', 'q8'],
  ['tiny-gpt2-q4_0.gguf', 'q4'],
]

for (const [file, dtype] of files) {
  test(`${file} loads as ${dtype} with the logits of the safetensors model`, async (t) => {
    const gguf = await Gpt2.fromPretrained(join(FIXTURES, file))
    const reference = await Gpt2.fromPretrained(TINY_MODEL, { dtype })
    t.is(gguf.dtype, dtype)
    t.is(gguf.config.vocabSize, 50257)
    t.deepEqual([...gguf.tokenizer.encode(PROMPT)], [40, 716, 4673, 546, 1152, 876, 257, 72, 290, 27140, 44, 338])
    const [ours, theirs] = await Promise.all([
      gguf.logits(PROMPT, { positions: 'all' }),
      reference.logits(PROMPT, { positions: 'all' }),
    ])
    t.true(maxAbsDiff(ours, theirs) <= 1e-4, `max diff ${maxAbsDiff(ours, theirs)}`)
    const [a, b] = await Promise.all([
      gguf.generate(PROMPT, { maxNewTokens: 8 }),
      reference.generate(PROMPT, { maxNewTokens: 8 }),
    ])
    t.is(a.newIds.length, 8)
    t.deepEqual(a.newIds, b.newIds)
    await Promise.all([gguf.dispose(), reference.dispose()])
  })
}

test('an explicit dtype converts, and a directory with one .gguf file loads it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nexttoken-gguf-'))
  copyFileSync(join(FIXTURES, 'tiny-gpt2-q8_0.gguf'), join(dir, 'model.gguf'))
  const fp32 = await Gpt2.fromPretrained(dir, { dtype: 'fp32' })
  t.is(fp32.dtype, 'fp32')
  const q8 = await Gpt2.fromPretrained(join(dir, 'model.gguf'))
  // The same weights; q8 products on a CPU with integer dot products (AVX2, AVX-512 VNNI) also
  // round the activations to int8 per block of 32, as llama.cpp does, for any number of tokens:
  // measured 0.25 on this fixture (bound 2x, as q4's below). With f32 activations
  // (NEXTTOKEN_SIMD=portable) the numbers of the dequantized fp32 model (measured 8.6e-6).
  const bound = process.env.NEXTTOKEN_SIMD === 'portable' ? 1e-4 : 0.5
  const short = [40, 716, 4673, 546]
  t.true(maxAbsDiff(await fp32.logits(short), await q8.logits(short)) <= bound)
  t.true(maxAbsDiff(await fp32.logits(PROMPT), await q8.logits(PROMPT)) <= bound)
  // Q4_0 the same way (its values are exact in fp32 too): measured 0.24 with integer dot
  // products, 9.5e-6 with f32 activations (crates/nexttoken/tests/gguf.rs).
  const q4Bound = process.env.NEXTTOKEN_SIMD === 'portable' ? 1e-4 : 0.5
  const q4File = join(FIXTURES, 'tiny-gpt2-q4_0.gguf')
  const [q4, q4AsFp32] = await Promise.all([
    Gpt2.fromPretrained(q4File),
    Gpt2.fromPretrained(q4File, { dtype: 'fp32' }),
  ])
  t.true(maxAbsDiff(await q4AsFp32.logits(short), await q4.logits(short)) <= q4Bound)
  t.true(maxAbsDiff(await q4AsFp32.logits(PROMPT), await q4.logits(PROMPT)) <= q4Bound)
  await Promise.all([q4.dispose(), q4AsFp32.dispose()])
  copyFileSync(join(FIXTURES, 'tiny-gpt2-q4_0.gguf'), join(dir, 'other.gguf'))
  const ambiguous = await t.throwsAsync(Gpt2.fromPretrained(dir))
  t.is((ambiguous as NodeJS.ErrnoException).code, 'ERR_INVALID_ARG')
  await Promise.all([fp32.dispose(), q8.dispose()])
})

test('damaged GGUF files are ERR_MODEL_INVALID and the process keeps working', async (t) => {
  const good = readFileSync(join(FIXTURES, 'tiny-gpt2-q4_0.gguf'))
  const dir = mkdtempSync(join(tmpdir(), 'nexttoken-gguf-'))
  const damaged: [string, Buffer][] = [
    ['truncated-header', good.subarray(0, 20)],
    ['truncated-tokens', good.subarray(0, 600_000)],
    ['truncated-data', good.subarray(0, good.length - 1)],
    ['bad-magic', Buffer.concat([Buffer.from('GGUX'), good.subarray(4)])],
    ['huge-count', Buffer.concat([good.subarray(0, 8), Buffer.alloc(8, 0xff), good.subarray(16)])],
  ]
  for (const [name, bytes] of damaged) {
    const path = join(dir, `${name}.gguf`)
    writeFileSync(path, bytes)
    const err = await t.throwsAsync(Gpt2.fromPretrained(path), undefined, name)
    t.is((err as NodeJS.ErrnoException).code, 'ERR_MODEL_INVALID', `${name}: ${err?.message}`)
  }
  // A .gguf path that does not exist is not looked up on the Hub (it also reads as a repo id).
  const missing = await t.throwsAsync(Gpt2.fromPretrained(join(dir, 'missing.gguf'), { offline: false }))
  t.is((missing as NodeJS.ErrnoException).code, 'ERR_MODEL_NOT_FOUND')
  const relative = await t.throwsAsync(Gpt2.fromPretrained('no-such-model.gguf'))
  t.is((relative as NodeJS.ErrnoException).code, 'ERR_MODEL_NOT_FOUND')
  t.regex(relative?.message ?? '', /no model directory at .*no-such-model\.gguf/)
  const model = await Gpt2.fromPretrained(join(FIXTURES, 'tiny-gpt2-q4_0.gguf'))
  t.is((await model.nextToken(PROMPT)).id >= 0, true)
  await model.dispose()
})

test('Tokenizer.fromPretrained reads a GGUF file’s tokenizer', async (t) => {
  const tokenizer = await Tokenizer.fromPretrained(join(FIXTURES, 'tiny-gpt2-q8_0.gguf'))
  const reference = await Tokenizer.fromPretrained(TINY_MODEL)
  const text = 'Héllo 🤖 wörld<|endoftext|> 12345'
  t.deepEqual([...tokenizer.encode(text)], [...reference.encode(text)])
  t.is(tokenizer.decode(tokenizer.encode(text)), text)
})
