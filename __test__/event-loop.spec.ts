// Model work runs off the JS thread: timers keep firing while a full-context forward runs.
import test from 'ava'

import { Gpt2 } from '../index'
import { TINY_MODEL } from './helpers/fixtures'

test('the event loop keeps ticking during 1024-token forwards', async (t) => {
  const model = await Gpt2.fromPretrained(TINY_MODEL)
  const ids = Array.from({ length: model.config.nPositions }, (_, i) => (i * 7919) % 50000)

  let ticks = 0
  const timer = setInterval(() => ticks++, 1)
  const started = performance.now()
  // 'all' positions makes each forward long enough (~0.2 s here) to need many timer periods.
  await Promise.all([model.logits(ids, { positions: 'all' }), model.logits(ids, { positions: 'all' })])
  const elapsed = performance.now() - started
  clearInterval(timer)

  t.log(`${ticks} ticks in ${elapsed.toFixed(0)} ms`)
  // Were the forward on the JS thread, no timer could fire before the promises settle.
  t.true(ticks >= Math.min(10, elapsed / 10), `${ticks} ticks in ${elapsed.toFixed(0)} ms`)
  await model.dispose()
})
