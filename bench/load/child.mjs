// One timed load in a fresh process (so that its peak RSS is the load's own): prints
// {"loadMs", "rssBeforeKiB", "peakKiB", "rssAfterKiB"} as JSON. Used by bench/load/run.mjs.
//   node bench/load/child.mjs <model dir> <dtype> [packed cache dir]
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const { Gpt2 } = createRequire(import.meta.url)(root)
const [model, dtype, packedCacheDir] = process.argv.slice(2)

function statusKiB(field) {
  const status = readFileSync('/proc/self/status', 'utf8')
  return Number(status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'))[1])
}

const rssBeforeKiB = statusKiB('VmRSS')
const start = performance.now()
const gpt2 = await Gpt2.fromPretrained(model, { dtype, ...(packedCacheDir ? { packedCacheDir } : {}) })
const loadMs = performance.now() - start
const result = { loadMs, rssBeforeKiB, peakKiB: statusKiB('VmHWM'), rssAfterKiB: statusKiB('VmRSS') }
await gpt2.logits('a first token') // the model works (and a mapped file is really there)
gpt2.dispose()
console.log(JSON.stringify(result))
