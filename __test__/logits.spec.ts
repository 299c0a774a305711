// Parity with transformers: logits, probabilities, top-5 and greedy next tokens on the fixture
// model against goldens from scripts/make_fixtures.py.
import test, { type ExecutionContext } from 'ava'

import { Gpt2 } from '../index'
import { maxAbsDiff, readGolden, readRows, TINY_MODEL } from './helpers/fixtures'
import { tinyModelWithWeights } from './helpers/model-dirs'
import { widenToF32 } from './helpers/safetensors'

// Both sides compute in f32 on the same weights; differences come from summation order only.
const LOGIT_TOLERANCE = 1e-4
const PROBABILITY_TOLERANCE = 1e-5

interface LogitsCase {
  name: string
  text?: string
  ids: number[]
  positions: number[]
  row: number
  top5: { id: number; p: number; logprob: number }[]
  greedyNext: number
}
interface LogitsGoldens {
  vocabSize: number
  file: string
  cases: LogitsCase[]
}

const goldens = readGolden<LogitsGoldens>('logits.json')
const goldenRow = readRows(goldens.file, goldens.vocabSize)
const model = Gpt2.fromPretrained(TINY_MODEL)

/** Checks every golden position of every case against `logitsOf(case)` ('all' positions). */
async function assertAllGoldenLogits(t: ExecutionContext, m: Gpt2): Promise<number> {
  let worst = 0
  for (const c of goldens.cases) {
    const all = await m.logits(c.ids, { positions: 'all' })
    t.is(all.length, c.ids.length * goldens.vocabSize)
    c.positions.forEach((position, i) => {
      const ours = all.subarray(position * goldens.vocabSize, (position + 1) * goldens.vocabSize)
      const diff = maxAbsDiff(ours, goldenRow(c.row + i))
      worst = Math.max(worst, diff)
      t.true(diff <= LOGIT_TOLERANCE, `${c.name} position ${position}: max |diff| ${diff}`)
    })
  }
  return worst
}

test('config mirrors config.json', async (t) => {
  const m = await model
  t.like(m.config, { modelType: 'gpt2', nLayer: 2, nHead: 4, nEmbd: 32, nPositions: 1024, vocabSize: 50257 })
  t.is(m.config.eosTokenId, 50256)
  t.is(m.config.layerNormEpsilon, 1e-5)
})

test('logits at every golden position are within 1e-4 of transformers', async (t) => {
  const worst = await assertAllGoldenLogits(t, await model)
  t.log(`largest |logit - golden|: ${worst.toExponential(2)}`)
})

test("positions: 'last' equals the last row of 'all', and text equals its ids", async (t) => {
  const m = await model
  for (const c of goldens.cases) {
    const last = await m.logits(c.text ?? c.ids)
    t.is(last.length, goldens.vocabSize)
    const lastGolden = goldenRow(c.row + c.positions.indexOf(c.ids.length - 1))
    t.true(maxAbsDiff(last, lastGolden) <= LOGIT_TOLERANCE, c.name)
  }
})

test('top-5 ids are identical and p within 1e-5; nextToken is the argmax', async (t) => {
  const m = await model
  for (const c of goldens.cases) {
    const top = await m.topK(c.ids, 5)
    t.deepEqual(
      top.map((x) => x.id),
      c.top5.map((x) => x.id),
      c.name,
    )
    top.forEach((x, i) => {
      t.true(Math.abs(x.p - c.top5[i].p) <= PROBABILITY_TOLERANCE, `${c.name} #${i} p ${x.p} vs ${c.top5[i].p}`)
      t.true(Math.abs(x.logprob - c.top5[i].logprob) <= LOGIT_TOLERANCE, `${c.name} #${i} logprob`)
      t.is(x.token, m.tokenizer.decode([x.id]))
    })
    const next = await m.nextToken(c.ids)
    t.is(next.id, c.greedyNext, c.name)
  }
})

test('probabilities are the softmax of the last logits', async (t) => {
  const m = await model
  const c = goldens.cases.find((x) => x.name === 'notebook-sentence') ?? goldens.cases[0]
  const probs = await m.probabilities(c.text ?? c.ids)
  t.is(probs.length, goldens.vocabSize)
  const sum = probs.reduce((a, b) => a + b, 0)
  t.true(Math.abs(sum - 1) < 1e-4, `sum ${sum}`)
  c.top5.forEach((x) => {
    t.true(Math.abs(probs[x.id] - x.p) <= PROBABILITY_TOLERANCE)
  })
})

test('the same weights stored as f32 give the same logits', async (t) => {
  const dir = tinyModelWithWeights((tensors) => new Map([...tensors].map(([k, v]) => [k, widenToF32(v)])))
  const m = await Gpt2.fromPretrained(dir)
  await assertAllGoldenLogits(t, m)
  await m.dispose()
})

test("keys without 'transformer.' and with attn.bias / lm_head buffers load the same", async (t) => {
  const dir = tinyModelWithWeights((tensors) => {
    const out = new Map([...tensors].map(([k, v]) => [k.replace(/^transformer\./, ''), v]))
    const mask = { dtype: 'F32', shape: [1, 1, 4, 4], data: Buffer.alloc(64) }
    out.set('h.0.attn.bias', mask)
    out.set('h.0.attn.masked_bias', { dtype: 'F32', shape: [], data: Buffer.alloc(4) })
    out.set('lm_head.weight', tensors.get('transformer.wte.weight')!)
    return out
  })
  const m = await Gpt2.fromPretrained(dir)
  const c = goldens.cases[1]
  const last = await m.logits(c.ids)
  t.true(maxAbsDiff(last, goldenRow(c.row + c.positions.indexOf(c.ids.length - 1))) <= LOGIT_TOLERANCE)
  await m.dispose()
})
