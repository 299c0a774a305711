// The cost of one token on a 512-token text: a session's append (one position, the KV cache
// holding the rest) against nextToken on the whole text (512 positions), on the same model.
//   node bench/session/append.mjs [model dir = bench/models/gpt2-124m] [reps = 20]
import { cpus } from 'node:os'
import { Gpt2 } from '../../index.js'

const [dir = 'bench/models/gpt2-124m', repsArg = '20'] = process.argv.slice(2)
const reps = Number(repsArg)
const model = await Gpt2.fromPretrained(dir)
const ids = Array.from({ length: 512 }, (_, i) => (i * 7919) % 50000)
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function time(work) {
  const ms = []
  for (let i = 0; i < reps + 2; i++) {
    const start = process.hrtime.bigint()
    await work()
    ms.push(Number(process.hrtime.bigint() - start) / 1e6)
  }
  return median(ms.slice(2)) // two warm-up runs
}

const session = await model.session(ids.slice(0, 511))
const append = await time(async () => {
  await session.truncate(511) // free: forgets the last position
  await session.append([ids[511]])
  await session.topK(1)
})
const full = await time(() => model.nextToken(ids))
console.log(`${cpus()[0].model}, ${cpus().length} logical CPUs, model ${dir}, median of ${reps}`)
console.log(`session.append(1 token) + topK on a 512-token session: ${append.toFixed(2)} ms`)
console.log(`model.nextToken(512-token text):                      ${full.toFixed(2)} ms`)
console.log(`ratio: ${(full / append).toFixed(1)}x`)
await session.dispose()
await model.dispose()
