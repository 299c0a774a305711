#!/usr/bin/env node
// Lower-precision weights, each engine at its own types, on the same 124M-shaped checkpoint:
// nexttoken's dtypes, llama.cpp (node-llama-cpp) on GGUFs of the same weights in F32 / F16 / BF16 /
// Q8_0 / Q4_0, transformers.js on its fp32 / fp16 / q8 ONNX files (all made by
// bench/make_checkpoint.py), PyTorch in float32 and bfloat16. One process per run,
// one after another, 2 threads each, the protocol of engines/driver.mjs (pp512, tg128).
//
//   node bench/dtypes/run.mjs [--reps 5] [--only nexttoken,node-llama-cpp,transformers.js,pytorch] [--date YYYY-MM-DD]
//
// --only re-runs some engines and keeps the others' results of the same date.
// Writes bench/results/<date>-dtypes.{json,md,svg}.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { machineInfo, measureBandwidth, promptIds, stat } from '../harness.mjs'
import { dtypeChart } from './chart.mjs'

const bench = join(dirname(fileURLToPath(import.meta.url)), '..')
const models = join(bench, 'models')
const THREADS = 2
const TESTS = [
  { id: 'pp512', kind: 'pp', promptTokens: 512 },
  { id: 'tg128', kind: 'tg', promptTokens: 1, newTokens: 128 },
]
const gguf = (type) => join(models, type ? `gpt2-124m-${type}.gguf` : 'gpt2-124m.gguf')

/** Each run: an engine at one dtype (named as ours: fp32, bf16, fp16, q8, q4). */
const RUNS = [
  ...['fp32', 'bf16', 'fp16', 'q8', 'q4'].map((dtype) => ({
    engine: 'nexttoken',
    dtype,
    cmd: ['node', 'engines/nexttoken.mjs'],
    env: { BENCH_DTYPE: dtype, RAYON_NUM_THREADS: String(THREADS) },
  })),
  ...[
    ['fp32', null],
    ['bf16', 'bf16'],
    ['fp16', 'f16'],
    ['q8', 'q8_0'],
    ['q4', 'q4_0'],
  ].map(([dtype, type]) => ({
    engine: 'node-llama-cpp',
    dtype,
    cmd: ['node', 'engines/node-llama-cpp.mjs'],
    env: { BENCH_GGUF: gguf(type) },
  })),
  ...['fp32', 'fp16', 'q8'].map((dtype) => ({
    engine: 'transformers.js',
    dtype,
    cmd: ['node', 'engines/transformersjs.mjs'],
    env: { BENCH_TJS_DTYPE: dtype },
  })),
  ...[
    ['fp32', 'float32'],
    ['bf16', 'bfloat16'],
  ].map(([dtype, torchDtype]) => ({
    engine: 'pytorch',
    dtype,
    cmd: ['python3', 'engines/pytorch.py'],
    env: { BENCH_TORCH_DTYPE: torchDtype },
  })),
]

function parseArgs(argv) {
  const a = { reps: 5, only: null, date: new Date().toISOString().slice(0, 10) }
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i].replace(/^--/, ''), argv[i + 1]]
    if (k === 'reps') a.reps = Number(v)
    else if (k === 'only') a.only = v.split(',')
    else if (k === 'date') a.date = v
    else throw new Error(`unknown option --${k}`)
  }
  return a
}

const args = parseArgs(process.argv.slice(2))
const say = (...m) => console.error('[dtypes]', ...m)
for (const r of RUNS)
  if (r.env.BENCH_GGUF && !existsSync(r.env.BENCH_GGUF))
    throw new Error(`${r.env.BENCH_GGUF} missing: run bench/make_checkpoint.py`)

const config = {
  threads: THREADS,
  reps: args.reps,
  warmup: 1,
  promptIds: promptIds(512),
  models: { hf: join(models, 'gpt2-124m'), gguf: gguf(null), onnx: join(models, 'gpt2-124m-onnx') },
  crossCheck: { promptTokens: 128, newTokens: 64 },
  tests: TESTS,
}
mkdirSync(join(bench, 'build'), { recursive: true })
const configPath = join(bench, 'build', 'config-dtypes.json')
writeFileSync(configPath, JSON.stringify(config))

const machine = machineInfo()
const bandwidth = measureBandwidth(THREADS)
say(machine.cpu, JSON.stringify(bandwidth))
const results = []
for (const run of RUNS.filter((r) => !args.only || args.only.includes(r.engine))) {
  const outPath = join(bench, 'build', `result-dtypes-${run.engine}-${run.dtype}.json`)
  writeFileSync(outPath, '')
  const loadAvg = os.loadavg()[0]
  say(`--- ${run.engine} ${run.dtype} (load average ${loadAvg.toFixed(2)})`)
  const r = spawnSync(run.cmd[0], [join(bench, run.cmd[1]), configPath, outPath], {
    cwd: bench,
    stdio: ['ignore', 'inherit', 'inherit'],
    timeout: 20 * 60 * 1000,
    env: { ...process.env, OMP_NUM_THREADS: String(THREADS), HF_HUB_OFFLINE: '1', ...run.env },
  })
  let raw = null
  try {
    raw = JSON.parse(readFileSync(outPath, 'utf8'))
  } catch {}
  if (r.status !== 0 || !raw) {
    results.push({ ...run, error: `exit ${r.status}${r.signal ? ` (${r.signal})` : ''}` })
    continue
  }
  const pp = raw.tests.pp512.map((x) => (512 / x.ms) * 1000)
  const tg = raw.tests.tg128.map((x) => ((x.n - 1) / x.decodeMs) * 1000)
  results.push({
    engine: run.engine,
    dtype: run.dtype,
    loadAvgAtStart: loadAvg,
    info: raw.info,
    loadMs: raw.loadMs,
    peakRssMiB: raw.peakRssKb / 1024,
    pp512: stat(pp),
    tg128: stat(tg),
    greedy: raw.crossCheck.ids,
  })
}

// With --only, the other engines' runs of the same date are kept from its results file.
const out = join(bench, 'results', `${args.date}-dtypes`)
if (args.only && existsSync(`${out}.json`)) {
  const earlier = JSON.parse(readFileSync(`${out}.json`, 'utf8')).results
  const kept = earlier.filter((r) => !args.only.includes(r.engine))
  results.splice(
    0,
    results.length,
    ...RUNS.flatMap((run) => {
      const found = [...kept, ...results].find((r) => r.engine === run.engine && r.dtype === run.dtype)
      return found ? [found] : []
    }),
  )
}

// ----------------------------------------------------------------------------------------------
const ours = (dtype) => results.find((r) => r.engine === 'nexttoken' && r.dtype === dtype && !r.error)
const fmt = (x, digits = 0) =>
  x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
const lines = [
  `# Weight dtypes, ${args.date}`,
  '',
  `${machine.cpu}, ${machine.logicalCpus} logical CPUs (${machine.flags.join(', ')}); DRAM read ${bandwidth.bestGBps ?? '?'} GB/s (machine/membw.c); load average ${machine.loadAvgAtStart.join(' ')} at the start.`,
  `GPT-2 124M shape, the same seeded-random weights in every run (bench/make_checkpoint.py), ${THREADS} threads, 1 warm-up + ${args.reps} repetitions, medians (min–max). tg128: 128 greedy tokens after a 1-token prompt, (128 − 1) / decode time; pp512: one forward pass over 512 prompt tokens. Load: the engine's own load call (file in the page cache). "× ours fp32": this run's tok/s over nexttoken fp32's; "× llama.cpp": nexttoken's over node-llama-cpp's at the same dtype.`,
  '',
  '| engine | dtype | tg128 tok/s | × ours fp32 | pp512 tok/s | × ours fp32 | load ms | peak RSS MiB | × llama.cpp (tg / pp) |',
  '| --- | --- | --: | --: | --: | --: | --: | --: | --: |',
]
for (const r of results) {
  if (r.error) {
    lines.push(`| ${r.engine} | ${r.dtype} | failed: ${r.error} | | | | | | |`)
    continue
  }
  const base = ours('fp32')
  const llama = results.find((x) => x.engine === 'node-llama-cpp' && x.dtype === r.dtype && !x.error)
  const vsLlama =
    r.engine === 'nexttoken' && llama
      ? `${fmt(r.tg128.median / llama.tg128.median, 2)} / ${fmt(r.pp512.median / llama.pp512.median, 2)}`
      : ''
  lines.push(
    `| ${r.engine} | ${r.dtype} | ${fmt(r.tg128.median, 1)} (${fmt(r.tg128.min, 1)}–${fmt(r.tg128.max, 1)}) | ${base ? fmt(r.tg128.median / base.tg128.median, 2) : ''} | ${fmt(r.pp512.median)} (${fmt(r.pp512.min)}–${fmt(r.pp512.max)}) | ${base ? fmt(r.pp512.median / base.pp512.median, 2) : ''} | ${fmt(r.loadMs)} | ${fmt(r.peakRssMiB)} | ${vsLlama} |`,
  )
}
lines.push('', 'Weights as each run describes them:', '')
for (const r of results.filter((x) => !x.error)) lines.push(`- ${r.engine} ${r.dtype}: ${r.info.weights}`)
const md = `${lines.join('\n')}\n`
const doc = { date: args.date, machine, bandwidth, config: { ...config, promptIds: undefined }, results }
writeFileSync(`${out}.json`, `${JSON.stringify(doc, null, 1)}\n`)
writeFileSync(`${out}.md`, md)
writeFileSync(`${out}.svg`, dtypeChart(doc))
console.log(md)
