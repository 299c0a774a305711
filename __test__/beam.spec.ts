// Beam search against transformers' goldens: the same sequences, token for token, and the same
// sequences_scores; and the option combinations it refuses.
import test from 'ava'

import { Gpt2, NexttokenError } from '../index'
import { readGolden, TINY_MODEL } from './helpers/fixtures'

interface BeamGolden {
  name: string
  promptIds: number[]
  options: Record<string, unknown>
  sequences: number[][]
  sequencesScores: number[]
}

const model = Gpt2.fromPretrained(TINY_MODEL)

for (const g of readGolden<BeamGolden[]>('beam.json')) {
  test(`beam search ${g.name}: transformers' sequences and sequences_scores`, async (t) => {
    const m = await model
    const results = await m.generate(g.promptIds, { ...g.options, numReturnSequences: g.sequences.length })
    t.deepEqual(
      results.map((r) => r.ids),
      g.sequences,
    )
    results.forEach((r, i) => {
      t.true(
        Math.abs((r.sequenceScore as number) - g.sequencesScores[i]) <=
          1e-4 * Math.max(1, Math.abs(g.sequencesScores[i])),
      )
      t.is(r.text, m.tokenizer.decode(r.ids))
    })
    if (g.name === 'ends-on-eos') t.is(results[0].stopReason, 'eos')
    // Without numReturnSequences: the best one, alone.
    const best = await m.generate(g.promptIds, { ...g.options, numReturnSequences: undefined })
    t.deepEqual(best.ids, g.sequences[0])
  })
}

test('generateBatch with beams: each prompt searched on its own, results in order', async (t) => {
  const m = await model
  const options = { numBeams: 3, maxNewTokens: 6, numReturnSequences: 2 }
  const prompts = ['The weather today is', 'Hello']
  const batch = await m.generateBatch(prompts, options)
  const single = [...(await m.generate(prompts[0], options)), ...(await m.generate(prompts[1], options))]
  t.deepEqual(
    batch.map((r) => r.ids),
    single.map((r) => r.ids),
  )
})

test('beam search refuses sampling, more sequences than beams, streaming and bad values', async (t) => {
  const m = await model
  const rejects = async (call: Promise<unknown>, message: RegExp) => {
    const err = await t.throwsAsync(call, { instanceOf: NexttokenError })
    t.is(err?.code, 'ERR_INVALID_ARG')
    t.regex(err?.message ?? '', message)
  }
  await rejects(m.generate('Hi', { numBeams: 3, doSample: true }), /beam sampling\) is not supported/)
  await rejects(m.generate('Hi', { numBeams: 2, numReturnSequences: 3 }), /at most numBeams/)
  await rejects(m.generate('Hi', { numBeams: 2, earlyStopping: 'sometimes' as never }), /earlyStopping/)
  await rejects(m.generate('Hi', { numBeams: 2, onToken: () => {} }), /onToken/)
  await rejects(m.generate('Hi', { numBeams: 2, stop: ['.'] }), /not supported with beam search/)
  t.throws(() => m.stream('Hi', { numBeams: 2 }), { instanceOf: NexttokenError })
  const session = await m.session('Hi')
  await rejects(session.generate({ numBeams: 2 }), /beam search/)
  await session.dispose()
})
