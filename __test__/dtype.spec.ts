// Weights held in fp32, fp16, bf16, q8 or q4 (`fromPretrained(dir, { dtype })`): the default is the
// checkpoint's own type, lossless dtypes match transformers' goldens to summation order, lossy
// ones stay within bounds measured on this fixture, and every dtype generates.
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import test from 'ava'

import { type Dtype, Gpt2 } from '../index'
import { klDivergence, maxAbsDiff, readGolden, readRows, TINY_MODEL } from './helpers/fixtures'
import { tinyModelWithWeights } from './helpers/model-dirs'
import { widenToF32 } from './helpers/safetensors'

interface LogitsGoldens {
  vocabSize: number
  file: string
  cases: { name: string; ids: number[]; positions: number[]; row: number }[]
}

const goldens = readGolden<LogitsGoldens>('logits.json')
const goldenRow = readRows(goldens.file, goldens.vocabSize)

/** Largest |logit - golden| over every golden position. */
async function worstLogitDiff(model: Gpt2): Promise<number> {
  let worst = 0
  for (const c of goldens.cases) {
    const all = await model.logits(c.ids, { positions: 'all' })
    c.positions.forEach((position, i) => {
      const ours = all.subarray(position * goldens.vocabSize, (position + 1) * goldens.vocabSize)
      worst = Math.max(worst, maxAbsDiff(ours, goldenRow(c.row + i)))
    })
  }
  return worst
}

test('the default dtype is the checkpoint’s own: fp16 for the f16 fixture, fp32 for an f32 copy', async (t) => {
  const half = await Gpt2.fromPretrained(TINY_MODEL)
  t.is(half.dtype, 'fp16')
  const f32Dir = tinyModelWithWeights((tensors) => new Map([...tensors].map(([k, v]) => [k, widenToF32(v)])))
  const full = await Gpt2.fromPretrained(f32Dir)
  t.is(full.dtype, 'fp32')
  // An f16 checkpoint held as fp16 is the same numbers as widened to fp32.
  t.true((await worstLogitDiff(half)) <= 1e-4)
  t.true((await worstLogitDiff(full)) <= 1e-4)
  await Promise.all([half.dispose(), full.dispose()])
})

interface QuantizedGoldens {
  vocabSize: number
  file: string
  cases: { name: string; ids: number[]; positions: number[]; rows: Record<string, number> }[]
}

const quantized = readGolden<QuantizedGoldens>('quantized.json')
const quantizedRow = readRows(quantized.file, quantized.vocabSize)

/**
 * Largest |logit - golden| and KL(golden || ours) against transformers run on the same weights
 * quantized and dequantized as our packer does (goldens/quantized.json, made by
 * scripts/make_fixtures.py): what the format itself loses is in the goldens, so the bounds are
 * about our arithmetic only.
 */
async function worstQuantizedDiff(model: Gpt2, dtype: 'q8' | 'q4'): Promise<{ diff: number; kl: number }> {
  let [diff, kl] = [0, 0]
  for (const c of quantized.cases) {
    const all = await model.logits(c.ids, { positions: 'all' })
    c.positions.forEach((position, i) => {
      const ours = all.subarray(position * quantized.vocabSize, (position + 1) * quantized.vocabSize)
      const golden = quantizedRow(c.rows[dtype] + i)
      diff = Math.max(diff, maxAbsDiff(ours, golden))
      kl = Math.max(kl, klDivergence(golden, ours))
    })
  }
  return { diff, kl }
}

// Bounds: the Rust golden tests' (crates/nexttoken/tests/goldens.rs), measured with ~2x headroom
// (bf16 1.5x where its products use AVX-512 BF16 and round activations too: see there). q8 and
// q4 are compared with their own quantized goldens; with f32 activations
// (`NEXTTOKEN_SIMD=portable`, as scripts/test-simd-paths.mjs runs this file) only the summation
// order differs from them, otherwise the int8 activations of the integer dot products too.
const F32_ACTIVATIONS = process.env.NEXTTOKEN_SIMD === 'portable'
const bounds: [Dtype, number, number?][] = [
  ['fp32', 1e-4],
  ['fp16', 1e-4],
  ['bf16', 0.2],
  ['q8', F32_ACTIVATIONS ? 1e-4 : 0.5, F32_ACTIVATIONS ? 1e-8 : 4e-3],
  ['q4', F32_ACTIVATIONS ? 1e-4 : 0.5, F32_ACTIVATIONS ? 1e-8 : 2.5e-3],
]

for (const [dtype, bound, klBound] of bounds) {
  const quantizedDtype = dtype === 'q8' || dtype === 'q4'
  const against = quantizedDtype ? `transformers on the same ${dtype} weights` : 'transformers'
  test(`dtype '${dtype}': logits within ${bound} of ${against}, and generate runs`, async (t) => {
    const model = await Gpt2.fromPretrained(TINY_MODEL, { dtype })
    t.is(model.dtype, dtype)
    if (quantizedDtype) {
      const { diff, kl } = await worstQuantizedDiff(model, dtype)
      t.log(`largest |logit - golden|: ${diff.toExponential(2)}, largest KL: ${kl.toExponential(2)}`)
      t.true(diff <= bound, `${diff}`)
      t.true(kl <= (klBound as number), `KL ${kl}`)
    } else {
      const worst = await worstLogitDiff(model)
      t.log(`largest |logit - golden|: ${worst.toExponential(2)}`)
      t.true(worst <= bound, `${worst}`)
    }
    const result = await model.generate('Hello, my name is', { maxNewTokens: 8, minNewTokens: 8 })
    t.is(result.newIds.length, 8)
    // The greedy choice is the argmax of the model's own logits in that dtype.
    const logits = await model.logits(result.ids.slice(0, result.ids.length - 8))
    const argmax = logits.reduce((best, x, i) => (x > logits[best] ? i : best), 0)
    t.is(result.newIds[0], argmax)
    await model.dispose()
  })
}

test('an unknown dtype, or one that is not a string, is ERR_INVALID_ARG before anything loads', async (t) => {
  for (const dtype of ['int3', 'FP32', '', 16, null]) {
    const err = await t.throwsAsync(Gpt2.fromPretrained(TINY_MODEL, { dtype: dtype as unknown as Dtype }))
    t.is((err as { code?: string }).code, 'ERR_INVALID_ARG', String(dtype))
  }
})

test('NEXTTOKEN_SIMD picks a lower instruction set with the same results, and a bad value fails the load', (t) => {
  const script = `
    const { Gpt2 } = require(${JSON.stringify(join(__dirname, '..', 'index.js'))})
    Gpt2.fromPretrained(${JSON.stringify(TINY_MODEL)}, { dtype: 'q8' })
      .then(async (m) => console.log(JSON.stringify(Array.from(await m.logits([464, 3290, 318])).slice(0, 50))))
      .catch((err) => console.log(JSON.stringify({ code: err.code, message: err.message })))`
  const run = (simd?: string) => {
    const env = { ...process.env, NEXTTOKEN_SIMD: simd }
    if (simd === undefined) delete env.NEXTTOKEN_SIMD
    return JSON.parse(execFileSync(process.execPath, ['-e', script], { env }).toString())
  }
  const best = run() as number[]
  const avx2 = run('avx2') as number[]
  const portable = run('portable') as number[]
  t.is(portable.length, 50)
  // q8 products take integer dot products on AVX2 and AVX-512 VNNI alike, with the same bits:
  // only the f32 parts' summation order differs.
  t.true(maxAbsDiff(best, avx2) <= 1e-4)
  // Portable code multiplies by the f32 activations instead of int8 ones: measured 0.11 apart
  // (AVX2 and AVX-512 measured 0); bound 2x, as the goldens'.
  t.true(maxAbsDiff(portable, avx2) <= 0.25)
  const bad = run('sse9') as { code: string; message: string }
  t.is(bad.code, 'ERR_INVALID_ARG')
  t.regex(bad.message, /NEXTTOKEN_SIMD=sse9/)
})
