// Many generate/stream calls at once on one model: each gets its own sequence and KV cache, the
// results equal those of calls made one at a time, and the event loop keeps ticking.
import test from 'ava'

import { Gpt2 } from '../index'
import { TINY_MODEL } from './helpers/fixtures'

const PROMPTS = ['Hello', 'Once upon a time', 'The quick brown fox', 'In 2026,', '日本語', 'def main():', 'A', 'Why']

test('concurrent generate and stream calls equal sequential ones while timers keep firing', async (t) => {
  const model = await Gpt2.fromPretrained(TINY_MODEL)
  const options = { maxNewTokens: 48, eosTokenId: null }
  const sequential = []
  for (const prompt of PROMPTS) sequential.push((await model.generate(prompt, options)).newIds)

  // Ticks of a 1 ms timer while the calls run: none if generation ran on the JS thread.
  let running = true
  let ticksWhileRunning = 0
  const timer = setInterval(() => (ticksWhileRunning += running ? 1 : 0), 1)
  const streamed = async (prompt: string) => {
    const ids: number[] = []
    for await (const step of model.stream(prompt, options)) ids.push(step.id)
    return ids
  }
  const concurrent = await Promise.all(
    PROMPTS.flatMap((prompt) => [model.generate(prompt, options).then((r) => r.newIds), streamed(prompt)]),
  )
  running = false
  clearInterval(timer)

  PROMPTS.forEach((prompt, i) => {
    t.deepEqual(concurrent[2 * i], sequential[i], `generate ${prompt}`)
    t.deepEqual(concurrent[2 * i + 1], sequential[i], `stream ${prompt}`)
  })
  t.true(ticksWhileRunning >= 2, `${ticksWhileRunning} timer ticks during concurrent generation`)
  await model.dispose()
})

test('seeded sampling gives the same tokens whatever runs beside it', async (t) => {
  const model = await Gpt2.fromPretrained(TINY_MODEL)
  const options = { doSample: true, seed: 42, maxNewTokens: 32, eosTokenId: null }
  const alone = await model.generate('Hello', options)
  const crowd = await Promise.all([
    model.generate('Hello', options),
    model.generate('Other prompt', { ...options, seed: 7 }),
    model.generate('Hello', options),
  ])
  t.deepEqual(crowd[0].newIds, alone.newIds)
  t.deepEqual(crowd[2].newIds, alone.newIds)
  await model.dispose()
})
