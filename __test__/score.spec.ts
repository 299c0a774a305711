// model.score: per-token log-probabilities, loss and perplexity, equal to transformers'
// model(ids, labels=ids) on goldens, and to the logits at each position.
import test from 'ava'

import { Gpt2, NexttokenError } from '../index'
import { readGolden, TINY_MODEL } from './helpers/fixtures'

interface ScoreGolden {
  name: string
  text: string
  ids: number[]
  loss: number
  perplexity: number
  logprobs: (number | null)[]
  sumLogprob: number
  topK?: number
  alternatives?: ({ id: number; logprob: number }[] | null)[]
}

const model = Gpt2.fromPretrained(TINY_MODEL)
/** Log-probabilities are logits minus a log-sum-exp: twice the logits' 1e-4 tolerance. */
const TOLERANCE = 2e-4

for (const g of readGolden<ScoreGolden[]>('score.json')) {
  test(`score ${g.name}: loss, perplexity and every token's logprob as transformers`, async (t) => {
    const m = await model
    const scored = await m.score(g.text, { topK: g.topK ?? 0 })
    t.deepEqual(
      scored.tokens.map((s) => s.id),
      g.ids,
    )
    t.true(Math.abs(scored.loss - g.loss) <= TOLERANCE, `${scored.loss} vs ${g.loss}`)
    t.true(Math.abs(scored.perplexity / g.perplexity - 1) < 1e-3)
    t.true(Math.abs(scored.logprob - g.sumLogprob) <= TOLERANCE * g.ids.length)
    scored.tokens.forEach((s, i) => {
      const theirs = g.logprobs[i]
      if (theirs === null) t.is(s.logprob, null)
      else t.true(Math.abs((s.logprob as number) - theirs) <= TOLERANCE, `token ${i}`)
      t.is(s.token, m.tokenizer.decode([s.id]))
    })
    if (g.alternatives) {
      t.false('alternatives' in scored.tokens[0])
      scored.tokens.slice(1).forEach((s, i) => {
        t.deepEqual(
          s.alternatives?.map((a) => a.id),
          g.alternatives?.[i + 1]?.map((a) => a.id),
        )
      })
    }
  })
}

test("score agrees with the logits at each position and with topK's table", async (t) => {
  const m = await model
  const text = 'The cat sat on the mat'
  const scored = await m.score(text, { topK: 2 })
  const ids = [...m.tokenizer.encode(text)]
  for (let i = 1; i < ids.length; i++) {
    const top = await m.topK(ids.slice(0, i), 2)
    t.deepEqual(
      scored.tokens[i].alternatives?.map((a) => a.id),
      top.map((a) => a.id),
    )
    const probs = await m.probabilities(ids.slice(0, i))
    t.true(Math.abs(Math.exp(scored.tokens[i].logprob as number) - probs[ids[i]]) < 1e-5)
  }
})

test('score refuses fewer than two tokens and bad options with ERR_INVALID_ARG', async (t) => {
  const m = await model
  for (const call of [
    m.score('Hi'),
    m.score([]),
    m.score('Hello world', { topK: -1 }),
    m.score('Hello world', null as never),
  ]) {
    const err = await t.throwsAsync(call, { instanceOf: NexttokenError })
    t.is(err?.code, 'ERR_INVALID_ARG')
  }
})
