// A short run of every kind of call, a dispose() racing them and models left to the garbage
// collector: what scripts/sanitize.sh runs under valgrind (whole test files would take hours
// there). node --expose-gc scripts/sanitize-smoke.mjs <model dir>
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { Gpt2 } = require('../index.js')
const dir = process.argv[2]

const model = await Gpt2.fromPretrained(dir)
const session = await model.session('Hello')
const calls = [
  model.logits('Hello world', { positions: 'all' }),
  model.topK('Hello', 5),
  model.score('Hello world'),
  model.generate('Once', { maxNewTokens: 8, eosTokenId: null }),
  model.generate('Once', { maxNewTokens: 4, numBeams: 2 }),
  model.generateBatch(['a', 'b c'], { maxNewTokens: 4 }),
  (async () => {
    for await (const _ of model.stream('Stream', { maxNewTokens: 4 }));
  })(),
  session.append(' there'),
  session.generate({ maxNewTokens: 4 }),
]
await new Promise((resolve) => setTimeout(resolve, 2))
await model.dispose()
const outcomes = await Promise.allSettled(calls)
const refused = outcomes.filter((o) => o.status === 'rejected')
for (const o of refused) if (o.reason?.code !== 'ERR_DISPOSED') throw o.reason
await session.dispose()
for (let i = 0; i < 3; i++) await (await Gpt2.fromPretrained(dir)).nextToken('Hi') // dropped, not disposed
for (let i = 0; i < 10; i++) {
  globalThis.gc()
  await new Promise((resolve) => setTimeout(resolve, 50))
}
console.log(JSON.stringify({ calls: calls.length, refused: refused.length }))
