// Batch throughput, every engine in one run: `node bench/batch/run.mjs [--engines a,b]` (after
// bench/run.sh has installed the peers and made the models; it reuses bench/build/config.json).
// nexttoken runs with f32 weights, as the peers do, and again with bf16, q8 and q4 (issue 14).
// Writes bench/results/<date>-batch.{json,md} and bench/results/latest-batch.md.
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { NEW_TOKENS, PROMPT_TOKENS, REPS, SIZES } from './protocol.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const bench = join(here, '..')
const configPath = join(bench, 'build', 'config.json')
const config = JSON.parse(readFileSync(configPath, 'utf8'))
const date = new Date().toISOString().slice(0, 10)
const env = { ...process.env, RAYON_NUM_THREADS: String(config.threads) }

const engines = [
  ['nexttoken', ['node', join(here, 'nexttoken.mjs')], { BENCH_DTYPE: 'fp32' }],
  ['nexttoken bf16', ['node', join(here, 'nexttoken.mjs')], { BENCH_DTYPE: 'bf16' }],
  ['nexttoken q8', ['node', join(here, 'nexttoken.mjs')], { BENCH_DTYPE: 'q8' }],
  ['nexttoken q4', ['node', join(here, 'nexttoken.mjs')], { BENCH_DTYPE: 'q4' }],
  ['pytorch', ['python3', join(here, 'pytorch.py')], {}],
  ['node-llama-cpp', ['node', join(here, 'node-llama-cpp.mjs')], {}],
]
const only = process.argv[2] === '--engines' ? process.argv[3].split(',') : null
const results = {}
for (const [name, [cmd, script], extraEnv] of engines.filter(([name]) => !only || only.includes(name))) {
  const out = join(bench, 'build', `batch-${name.replace(' ', '-')}.json`)
  console.error(`[batch] ${name}`)
  execFileSync(cmd, [script, configPath, out], { stdio: 'inherit', env: { ...env, ...extraEnv }, cwd: bench })
  results[name] = JSON.parse(readFileSync(out, 'utf8'))
}

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]
const percentile = (a, p) => {
  const s = [...a].sort((x, y) => x - y)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]
}
function summarize(reps, b) {
  const gaps = reps.flatMap((r) => r.stamps.flatMap((s) => s.slice(1).map((t, i) => t - s[i])))
  return {
    aggregateTokPerS: ((b * NEW_TOKENS) / median(reps.map((r) => r.wallMs))) * 1000,
    itlP50Ms: percentile(gaps, 50),
    itlP99Ms: percentile(gaps, 99),
    ttftMedianMs: median(reps.flatMap((r) => r.stamps.map((s) => s[0]))),
  }
}
const summary = {}
for (const [name, r] of Object.entries(results)) {
  summary[name] = Object.fromEntries(SIZES.map((b) => [b, summarize(r.sizes[b], b)]))
}

const lines = [
  `# Batch generation, ${date}`,
  '',
  `B prompts of ${PROMPT_TOKENS} tokens at once, ${NEW_TOKENS} greedy tokens each (eos ignored), GPT-2 124M-shaped, f32 weights`,
  'unless the engine names another dtype (the same checkpoint, converted on load),',
  `${config.threads} threads per engine, 1 warm-up + ${REPS} repetitions, medians. Aggregate = B x ${NEW_TOKENS} / wall time;`,
  'ITL = time between consecutive tokens of one request (p50 / p99 over all requests and repetitions).',
  '',
  '| engine | B | aggregate tok/s | x B=1 | x nexttoken f32 | ITL p50 ms | ITL p99 ms | TTFT median ms |',
  '| --- | --: | --: | --: | --: | --: | --: | --: |',
]
for (const [name, bySize] of Object.entries(summary)) {
  const one = bySize[1].aggregateTokPerS
  for (const b of SIZES) {
    const s = bySize[b]
    const f32 = summary.nexttoken?.[b].aggregateTokPerS
    const vsF32 = f32 ? (s.aggregateTokPerS / f32).toFixed(2) : '-'
    lines.push(
      `| ${name} | ${b} | ${s.aggregateTokPerS.toFixed(1)} | ${(s.aggregateTokPerS / one).toFixed(2)} | ${vsF32} | ${s.itlP50Ms.toFixed(1)} | ${s.itlP99Ms.toFixed(1)} | ${s.ttftMedianMs.toFixed(0)} |`,
    )
  }
}
lines.push(
  '',
  'Modes: ' +
    Object.entries(results)
      .map(([n, r]) => `${n}: ${r.info.mode}`)
      .join('; ') +
    '.',
  '',
)
const resultsDir = join(bench, 'results')
mkdirSync(resultsDir, { recursive: true })
writeFileSync(
  join(resultsDir, `${date}-batch.json`),
  JSON.stringify(
    {
      date,
      config: { threads: config.threads, sizes: SIZES, promptTokens: PROMPT_TOKENS, newTokens: NEW_TOKENS, reps: REPS },
      summary,
      raw: results,
    },
    null,
    1,
  ),
)
writeFileSync(join(resultsDir, `${date}-batch.md`), lines.join('\n'))
// latest-batch.md (the README's table) only from a run of every engine.
if (!only) writeFileSync(join(resultsDir, 'latest-batch.md'), lines.join('\n'))
console.log(lines.join('\n'))
