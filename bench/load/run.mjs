// Load time and memory per dtype, reading the checkpoint and from a packed cache
// (`fromPretrained(dir, { dtype, packedCacheDir })`), for the 124M shape and gpt2-medium's shape.
// Each load runs in a fresh process (bench/load/child.mjs) with the checkpoint in the page cache;
// medians of --reps loads (min–max). "Peak RSS": VmHWM right after the load, which includes
// Node's own memory (the "before" column); "weights": the packed matrices' bytes in that dtype
// (the cache file's size).
//
//   node bench/load/run.mjs [--reps 5] [--date YYYY-MM-DD]
//   (bench/make_checkpoint.py first; the medium-shaped checkpoint is written on first use)
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { makeMedium } from './make_medium.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const { values: args } = parseArgs({
  options: { reps: { type: 'string', default: '5' }, date: { type: 'string' } },
})
const reps = Number(args.reps)
const date = args.date ?? new Date().toISOString().slice(0, 10)
const THREADS = 2
const DTYPES = ['fp32', 'bf16', 'fp16', 'q8', 'q4']
const MODELS = [
  ['124M', join(here, '..', 'models', 'gpt2-124m')],
  ['medium shape', makeMedium()],
]

function child(model, dtype, cacheDir) {
  const args = [join(here, 'child.mjs'), model, dtype, ...(cacheDir ? [cacheDir] : [])]
  const env = { ...process.env, RAYON_NUM_THREADS: String(THREADS) }
  return JSON.parse(execFileSync(process.execPath, args, { env, encoding: 'utf8' }))
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const summary = (xs) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs) })

const rows = []
for (const [shape, model] of MODELS) {
  execFileSync('cat', [join(model, 'model.safetensors')], { stdio: ['ignore', 'ignore', 'inherit'] }) // into the page cache
  for (const dtype of DTYPES) {
    const cacheDir = mkdtempSync(join(tmpdir(), 'nexttoken-load-bench-'))
    const writing = child(model, dtype, cacheDir)
    const [file] = readdirSync(cacheDir).filter((name) => name.endsWith('.packed'))
    const weightsMiB = statSync(join(cacheDir, file)).size / 2 ** 20
    for (const [mode, dir] of [
      ['read', undefined],
      ['packed cache', cacheDir],
    ]) {
      const runs = Array.from({ length: reps }, () => child(model, dtype, dir))
      const row = {
        shape,
        dtype,
        mode,
        loadMs: summary(runs.map((r) => r.loadMs)),
        peakMiB: median(runs.map((r) => r.peakKiB / 1024)),
        beforeMiB: median(runs.map((r) => r.rssBeforeKiB / 1024)),
        weightsMiB,
        writingLoadMs: mode === 'packed cache' ? writing.loadMs : undefined,
      }
      rows.push(row)
      console.error(
        `${shape} ${dtype} ${mode}: ${row.loadMs.median.toFixed(0)} ms (${row.loadMs.min.toFixed(0)}–${row.loadMs.max.toFixed(0)}), peak ${row.peakMiB.toFixed(0)} MiB, weights ${weightsMiB.toFixed(0)} MiB`,
      )
    }
    rmSync(cacheDir, { recursive: true, force: true })
  }
}

const fmt = (x) => x.toFixed(0)
const lines = [
  `# Load time and memory (${date})`,
  '',
  `${cpus()[0].model}, ${cpus().length} logical CPUs; load average ${loadavg()[0].toFixed(2)} at the end. RAYON_NUM_THREADS=${THREADS}. \`node bench/load/run.mjs --reps ${reps}\`: each load in a fresh Node process, checkpoint in the page cache, medians of ${reps} (min–max). "read": the checkpoint read and packed (the default); "packed cache": \`packedCacheDir\` with the file already written ("first load" is the load that wrote it, sync included). Peak RSS is VmHWM right after \`fromPretrained\`, Node's own memory ("Node before") included; "over weights" is peak RSS − Node before − weights.`,
  '',
  '| shape | dtype | mode | load ms | first load ms | weights MiB | peak RSS MiB | Node before | over weights MiB |',
  '| --- | --- | --- | --: | --: | --: | --: | --: | --: |',
  ...rows.map(
    (r) =>
      `| ${r.shape} | ${r.dtype} | ${r.mode} | ${fmt(r.loadMs.median)} (${fmt(r.loadMs.min)}–${fmt(r.loadMs.max)}) | ${r.writingLoadMs === undefined ? '' : fmt(r.writingLoadMs)} | ${fmt(r.weightsMiB)} | ${fmt(r.peakMiB)} | ${fmt(r.beforeMiB)} | ${fmt(r.peakMiB - r.beforeMiB - r.weightsMiB)} |`,
  ),
  '',
]
const out = join(here, '..', 'results', `${date}-load`)
writeFileSync(`${out}.md`, lines.join('\n'))
writeFileSync(`${out}.json`, `${JSON.stringify({ date, threads: THREADS, reps, rows }, null, 2)}\n`)
console.log(lines.join('\n'))
