// Model work runs off the JS thread: timers keep firing while a full-context forward runs.
import test from 'ava'

import { Gpt2 } from '../index'
import { TINY_MODEL } from './helpers/fixtures'

test('the event loop keeps ticking during 1024-token forwards', async (t) => {
  const model = await Gpt2.fromPretrained(TINY_MODEL)
  const ids = Array.from({ length: model.config.nPositions }, (_, i) => (i * 7919) % 50000)

  // Ticks of a 1 ms timer while the forwards run. Were the forward on the JS
  // thread, no timer could fire before the promises settle: there would be none.
  let running = true
  let ticksWhileRunning = 0
  const timer = setInterval(() => (ticksWhileRunning += running ? 1 : 0), 1)
  // 'all' positions makes each forward long (~0.2 s here): many timer periods.
  await Promise.all([model.logits(ids, { positions: 'all' }), model.logits(ids, { positions: 'all' })])
  running = false
  clearInterval(timer)
  t.true(ticksWhileRunning >= 2, `${ticksWhileRunning} timer ticks while the forwards ran`)
  await model.dispose()
})
