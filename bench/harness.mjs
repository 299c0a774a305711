#!/usr/bin/env node
// Runs every engine on the same GPT-2 124M weights, one after another, each in its own process, and
// writes bench/results/<date>.{json,md,svg} + latest.{md,svg}. Called by run.sh (which installs the
// dependencies and makes the models first); see README.md.
//
//   node harness.mjs [--reps 5] [--warmup 1] [--threads 2] [--engines nexttoken,pytorch,transformers.js,node-llama-cpp]
//                    [--out results] [--date YYYY-MM-DD]
import { execFileSync, spawnSync } from 'node:child_process'
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  closeSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import os from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { render } from './render.mjs'

const bench = dirname(fileURLToPath(import.meta.url))
const root = join(bench, '..')

// ---------------------------------------------------------------------------------------------
const ENGINES = {
  nexttoken: { cmd: 'node', script: 'engines/nexttoken.mjs', env: (t) => ({ RAYON_NUM_THREADS: String(t) }) },
  pytorch: { cmd: 'python3', script: 'engines/pytorch.py', env: () => ({}) },
  'transformers.js': { cmd: 'node', script: 'engines/transformersjs.mjs', env: () => ({}) },
  'node-llama-cpp': { cmd: 'node', script: 'engines/node-llama-cpp.mjs', env: () => ({}) },
}
const TESTS = [
  { id: 'pp128', kind: 'pp', promptTokens: 128 },
  { id: 'pp512', kind: 'pp', promptTokens: 512 },
  { id: 'ttft128', kind: 'ttft', promptTokens: 128 },
  { id: 'tg128', kind: 'tg', promptTokens: 1, newTokens: 128 },
  { id: 'tg128@d512', kind: 'tg', promptTokens: 512, newTokens: 128 },
]
const CROSS_CHECK = { promptTokens: 128, newTokens: 64 }

function parseArgs(argv) {
  const a = { reps: 5, warmup: 1, threads: 2, engines: Object.keys(ENGINES), out: join(bench, 'results'), date: null }
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '')
    const v = argv[++i]
    if (k === 'reps' || k === 'warmup' || k === 'threads') a[k] = Number(v)
    else if (k === 'engines') a.engines = v.split(',').map((s) => s.trim())
    else if (k === 'out') a.out = v
    else if (k === 'date') a.date = v
    else {
      console.error(`unknown option --${k}`)
      process.exit(2)
    }
  }
  for (const e of a.engines)
    if (!ENGINES[e]) throw new Error(`unknown engine ${e}; known: ${Object.keys(ENGINES).join(', ')}`)
  if (!(a.reps >= 1 && a.warmup >= 0 && a.threads >= 1)) throw new Error('bad --reps / --warmup / --threads')
  return a
}

const say = (...m) => console.error('[bench]', ...m)
const sh = (cmd, args, opts = {}) => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], ...opts }).trim()
  } catch {
    return null
  }
}

// The same prompt ids for every engine: a fixed LCG over [0, 50256), eos (50256) never included.
export function promptIds(n) {
  const ids = []
  let x = 20240607
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    ids.push((x >>> 8) % 50256)
  }
  return ids
}

// ---------------------------------------------------------------------------------------------
// The machine, measured in the same run
export function machineInfo() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8')
  const model = (cpuinfo.match(/^model name\s*:\s*(.*)$/m) || [])[1] || os.cpus()[0]?.model
  const flags = ((cpuinfo.match(/^flags\s*:\s*(.*)$/m) || [])[1] || '').split(' ')
  const want = [
    'avx2',
    'fma',
    'f16c',
    'avx512f',
    'avx512bw',
    'avx512vl',
    'avx512_vnni',
    'avx512_bf16',
    'avx512_fp16',
    'amx_bf16',
    'amx_tile',
  ]
  return {
    cpu: model,
    logicalCpus: os.cpus().length,
    flags: want.filter((f) => flags.includes(f)),
    memGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    kernel: os.release(),
    node: process.version,
    python: sh('python3', ['--version']),
    gcc: (sh('gcc', ['--version']) || '').split('\n')[0] || null,
    loadAvgAtStart: os.loadavg().map((x) => +x.toFixed(2)),
  }
}

export function measureBandwidth(threads) {
  const src = join(bench, 'machine', 'membw.c')
  const bin = join(bench, 'build', 'membw')
  mkdirSync(dirname(bin), { recursive: true })
  if (!existsSync(bin) || statSync(bin).mtimeMs < statSync(src).mtimeMs) {
    const r = spawnSync('gcc', ['-O3', '-march=native', '-ffast-math', '-fopenmp', src, '-o', bin], {
      stdio: 'inherit',
    })
    if (r.status !== 0) return { error: 'gcc -fopenmp failed' }
  }
  const out = sh(bin, ['1024', '10'], {
    env: { ...process.env, OMP_NUM_THREADS: String(threads), OMP_PROC_BIND: 'spread' },
  })
  if (!out) return { error: 'membw failed' }
  return {
    what: `C/OpenMP sum of a 1 GiB float buffer, ${threads} threads, best of 10 passes, before and after the engines (machine/membw.c)`,
    ...JSON.parse(out),
  }
}

function measurePeak(threads) {
  const out = sh('python3', [join(bench, 'machine', 'peak_flops.py'), String(threads), '2048', '10'], {
    env: { ...process.env, OMP_NUM_THREADS: String(threads) },
  })
  return out ? JSON.parse(out) : { error: 'peak_flops.py failed (torch missing?)' }
}

// Tensor bytes and FLOP counts from the checkpoint's safetensors header.
function checkpointStats(hfDir) {
  const cfg = JSON.parse(readFileSync(join(hfDir, 'config.json'), 'utf8'))
  const fd = openSync(join(hfDir, 'model.safetensors'), 'r')
  const len = Buffer.alloc(8)
  readSync(fd, len, 0, 8, 0)
  const hdr = Buffer.alloc(Number(len.readBigUInt64LE(0)))
  readSync(fd, hdr, 0, hdr.length, 8)
  closeSync(fd)
  const header = JSON.parse(hdr.toString('utf8'))
  let totalBytes = 0
  let params = 0
  let blockMatmulParams = 0
  let wpeBytes = 0
  const dtypes = new Set()
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__' || /\.attn\.(masked_)?bias$/.test(name)) continue
    const bytes = t.data_offsets[1] - t.data_offsets[0]
    const numel = t.shape.reduce((a, b) => a * b, 1)
    totalBytes += bytes
    params += numel
    dtypes.add(t.dtype)
    if (/(^|\.)h\.\d+\./.test(name) && t.shape.length === 2) blockMatmulParams += numel
    if (/(^|\.)wpe\.weight$/.test(name)) wpeBytes = bytes
  }
  const E = cfg.n_embd
  const L = cfg.n_layer
  const V = cfg.vocab_size
  return {
    params,
    dtypes: [...dtypes],
    tensorBytes: totalBytes,
    // Decode reads every weight once per token, except the position table (one row of wpe).
    // wte is read whole by the tied lm_head.
    decodeBytesPerToken: totalBytes - wpeBytes,
    blockMatmulParams,
    nLayer: L,
    nEmbd: E,
    vocab: V,
  }
}

/** FLOPs of a prefill of S tokens that yields the last position's logits. */
export function prefillFlops(st, S) {
  const blocks = 2 * st.blockMatmulParams * S // the 12 blocks' matmuls (qkv, proj, fc, proj)
  const attention = st.nLayer * 2 * st.nEmbd * S * (S + 1) // causal QK^T and AV
  const lmHead = 2 * st.nEmbd * st.vocab // one row of logits
  return blocks + attention + lmHead
}

// ---------------------------------------------------------------------------------------------
const median = (a) => {
  const s = [...a].sort((x, y) => x - y)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
export const stat = (a) => ({ median: median(a), min: Math.min(...a), max: Math.max(...a), n: a.length })

function summarize(raw, st) {
  const s = {
    loadMs: raw.loadMs,
    peakRssMiB: raw.peakRssKb / 1024,
    rssAfterLoadMiB: raw.rssAfterLoadKb / 1024,
    tests: {},
  }
  for (const t of TESTS) {
    const runs = raw.tests?.[t.id]
    if (!runs) continue
    if (t.kind === 'pp') {
      const tps = stat(runs.map((r) => (t.promptTokens / r.ms) * 1000))
      const flops = prefillFlops(st, t.promptTokens)
      s.tests[t.id] = {
        tokPerS: tps,
        ms: stat(runs.map((r) => r.ms)),
        gflops: stat(runs.map((r) => flops / r.ms / 1e6)),
      }
    } else if (t.kind === 'ttft') {
      s.tests[t.id] = { ms: stat(runs.map((r) => r.ms)) }
    } else {
      const tps = runs.map((r) => ((r.n - 1) / r.decodeMs) * 1000)
      s.tests[t.id] = {
        tokPerS: stat(tps),
        gbps: stat(tps.map((x) => (x * st.decodeBytesPerToken) / 1e9)),
        ttftMs: stat(runs.map((r) => r.ttftMs)),
      }
    }
  }
  return s
}

function crossCheck(results, refName) {
  const ref = results[refName]?.raw?.crossCheck
  const out = {}
  for (const [name, r] of Object.entries(results)) {
    const cc = r.raw?.crossCheck
    if (!cc) continue
    const c = { ids: cc.ids, distinct: new Set(cc.ids).size }
    if (ref) {
      let same = 0
      while (same < ref.ids.length && cc.ids[same] === ref.ids[same]) same++
      c.reference = refName
      c.matchingPrefix = same
      c.identical = same === ref.ids.length && cc.ids.length === ref.ids.length
      if (cc.top?.length && ref.top?.length) {
        const refTop = new Map(ref.top.map((x) => [x.id, x.logit]))
        c.top10SameIds = cc.top.every((x) => refTop.has(x.id))
        c.top10MaxAbsDiff = Math.max(
          ...cc.top.filter((x) => refTop.has(x.id)).map((x) => Math.abs(x.logit - refTop.get(x.id))),
        )
      }
    }
    out[name] = c
  }
  return out
}

// ---------------------------------------------------------------------------------------------
async function main() {
  const args = parseArgs(process.argv.slice(2))
  const models = {
    hf: join(bench, 'models', 'gpt2-124m'),
    onnx: join(bench, 'models', 'gpt2-124m-onnx'),
    gguf: join(bench, 'models', 'gpt2-124m.gguf'),
  }
  if (!existsSync(join(models.hf, 'model.safetensors')))
    throw new Error('models missing: run bench/run.sh (or python3 bench/make_checkpoint.py)')
  const started = new Date()
  const date = args.date ?? started.toISOString().slice(0, 10)
  const machine = machineInfo()
  say(`${machine.cpu}, ${machine.logicalCpus} logical CPUs, load average ${machine.loadAvgAtStart.join(' ')}`)
  if (machine.loadAvgAtStart[0] > 0.5) say('warning: the machine is not idle; numbers will be noisy')

  say(`DRAM read bandwidth (${args.threads} threads) ...`)
  const bandwidth = measureBandwidth(args.threads)
  say(JSON.stringify(bandwidth))
  say(`f32 matmul peak (${args.threads} threads) ...`)
  const peak = measurePeak(args.threads)
  say(JSON.stringify(peak))

  const st = checkpointStats(models.hf)
  const config = {
    threads: args.threads,
    reps: args.reps,
    warmup: args.warmup,
    promptIds: promptIds(512),
    models,
    crossCheck: CROSS_CHECK,
    tests: TESTS,
  }
  mkdirSync(join(bench, 'build'), { recursive: true })
  const configPath = join(bench, 'build', 'config.json')
  writeFileSync(configPath, JSON.stringify(config))

  const results = {}
  for (const name of args.engines) {
    const e = ENGINES[name]
    const outPath = join(bench, 'build', `result-${name}.json`)
    if (existsSync(outPath)) writeFileSync(outPath, '')
    const loadAvg = os.loadavg().map((x) => +x.toFixed(2))
    say(`--- ${name} (load average ${loadAvg.join(' ')})`)
    const t0 = Date.now()
    const r = spawnSync(e.cmd, [join(bench, e.script), configPath, outPath], {
      cwd: bench,
      stdio: ['ignore', 'inherit', 'inherit'],
      timeout: 30 * 60 * 1000,
      env: { ...process.env, OMP_NUM_THREADS: String(args.threads), HF_HUB_OFFLINE: '1', ...e.env(args.threads) },
    })
    const wallS = (Date.now() - t0) / 1000
    let raw = null
    try {
      raw = JSON.parse(readFileSync(outPath, 'utf8'))
    } catch {}
    if (r.status !== 0 || !raw) {
      say(`${name} failed (exit ${r.status}${r.signal ? `, ${r.signal}` : ''})`)
      results[name] = { error: `exit ${r.status}${r.signal ? ` (${r.signal})` : ''}`, loadAvgAtStart: loadAvg, wallS }
      continue
    }
    results[name] = { loadAvgAtStart: loadAvg, wallS, info: raw.info, raw, summary: summarize(raw, st) }
  }

  // Once more at the end: on a shared machine the two differ, and the ceiling takes the better one.
  say(`DRAM read bandwidth again (${args.threads} threads) ...`)
  const bandwidthAfter = measureBandwidth(args.threads)
  say(JSON.stringify(bandwidthAfter))
  const dramGBps = Math.max(bandwidth.bestGBps ?? 0, bandwidthAfter.bestGBps ?? 0) || null

  const refName = results.pytorch?.raw ? 'pytorch' : 'nexttoken'
  const doc = {
    date,
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    command: `bench/run.sh ${process.argv.slice(2).join(' ')}`.trim(),
    protocol: {
      threads: args.threads,
      warmup: args.warmup,
      reps: args.reps,
      tests: TESTS,
      crossCheck: { ...CROSS_CHECK, reference: refName },
      promptIds: config.promptIds,
      greedy: true,
      eos: 'ignored (generation never stops at eos; eos is not masked)',
      statistic: 'median of the repetitions, with min and max',
    },
    repository: {
      commit: sh('git', ['rev-parse', '--short', 'HEAD'], { cwd: root }),
      dirty: (sh('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root }) || '') !== '',
    },
    machine: {
      ...machine,
      loadAvgAtEnd: os.loadavg().map((x) => +x.toFixed(2)),
      dramRead: {
        ...bandwidth,
        bestGBps: dramGBps,
        before: bandwidth.bestGBps ?? null,
        after: bandwidthAfter.bestGBps ?? null,
      },
      matmulPeak: peak,
    },
    checkpoint: st,
    ceilings: {
      decodeTokPerS: dramGBps ? (dramGBps * 1e9) / st.decodeBytesPerToken : null,
      prefillTokPerS: Object.fromEntries(
        TESTS.filter((t) => t.kind === 'pp').map((t) => [
          t.id,
          peak.bestGflops ? (peak.bestGflops * 1e9 * t.promptTokens) / prefillFlops(st, t.promptTokens) : null,
        ]),
      ),
    },
    crossCheck: crossCheck(results, refName),
    engines: results,
  }

  mkdirSync(args.out, { recursive: true })
  const base = join(args.out, date)
  writeFileSync(`${base}.json`, `${JSON.stringify(doc, null, 1)}\n`)
  const { md, svg } = render(doc)
  writeFileSync(`${base}.md`, md)
  writeFileSync(`${base}.svg`, svg)
  copyFileSync(`${base}.md`, join(args.out, 'latest.md'))
  copyFileSync(`${base}.svg`, join(args.out, 'latest.svg'))
  console.log(md)
  say(`wrote ${relative(process.cwd(), base)}.{json,md,svg} and latest.{md,svg}`)
  if (Object.values(results).some((r) => r.error)) process.exitCode = 1
}

// Run as a script (bench/dtypes/run.mjs imports the helpers above).
if (import.meta.url === pathToFileURL(process.argv[1]).href)
  main().catch((e) => {
    console.error(e)
    process.exit(1)
  })
