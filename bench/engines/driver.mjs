// The measuring protocol shared by the Node engines (engines/pytorch.py repeats it in Python).
//
// An engine is an adapter:
//   load()                      -> loads the model (timed here, once)
//   prefill(ids)                -> one forward pass over ids with empty KV cache, logits of the last position
//   generate(ids, n)            -> greedy, eos ignored (not masked), fresh KV cache; resolves to
//                                  { ids: number[] (new ids), ttftMs, decodeMs, n, wallMs? }
//                                  ttftMs: call start -> first new token; decodeMs: first -> last new token
//   topLogits?(ids, k)          -> [{ id, logit }] of the last position, best first (cross-check)
//   info()                      -> { version, ... } for the results file
//
// Usage of an engine script: node engines/<name>.mjs <config.json> <result.json>
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const benchDir = join(dirname(fileURLToPath(import.meta.url)), '..')

/** Version of a package installed in bench/node_modules (null if absent). */
export function pkgVersion(name) {
  try {
    return JSON.parse(readFileSync(join(benchDir, 'node_modules', name, 'package.json'), 'utf8')).version
  } catch {
    return null
  }
}

export function readArgs() {
  const [configPath, outPath] = process.argv.slice(2)
  if (!configPath || !outPath) {
    console.error('usage: node engines/<engine>.mjs <config.json> <result.json>')
    process.exit(2)
  }
  return { config: JSON.parse(readFileSync(configPath, 'utf8')), outPath }
}

/** Peak resident set (VmHWM) and current (VmRSS) of this process in KiB, from /proc/self/status. */
export function memKb() {
  try {
    const s = readFileSync('/proc/self/status', 'utf8')
    const get = (k) => Number((s.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm')) || [])[1])
    return { hwm: get('VmHWM'), rss: get('VmRSS') }
  } catch {
    const hwm = process.resourceUsage().maxRSS
    return { hwm, rss: Math.round(process.memoryUsage().rss / 1024) }
  }
}

const log = (name, ...a) => console.error(`  [${name}]`, ...a)

async function repeat(cfg, fn) {
  for (let i = 0; i < cfg.warmup; i++) await fn()
  const runs = []
  for (let i = 0; i < cfg.reps; i++) runs.push(await fn())
  return runs
}

export async function runProtocol(name, engine) {
  const { config: cfg, outPath } = readArgs()
  const prompt = cfg.promptIds
  const out = { engine: name, rssBeforeLoadKb: memKb().rss, tests: {} }
  const t0 = performance.now()
  await engine.load()
  out.loadMs = performance.now() - t0
  out.rssAfterLoadKb = memKb().rss
  log(name, `loaded in ${out.loadMs.toFixed(0)} ms`)
  out.info = await engine.info()

  // Cross-check: greedy ids after the same prompt (and the top logits where the engine exposes them).
  const cc = cfg.crossCheck
  const ccPrompt = prompt.slice(0, cc.promptTokens)
  const g = await engine.generate(ccPrompt, cc.newTokens)
  out.crossCheck = { ids: g.ids }
  if (engine.topLogits) out.crossCheck.top = await engine.topLogits(ccPrompt, 10)

  for (const t of cfg.tests) {
    const ids = prompt.slice(0, t.promptTokens)
    let runs
    if (t.kind === 'pp') {
      runs = await repeat(cfg, async () => {
        const s = performance.now()
        await engine.prefill(ids)
        return { ms: performance.now() - s }
      })
    } else if (t.kind === 'ttft') {
      runs = await repeat(cfg, async () => {
        const s = performance.now()
        const r = await engine.generate(ids, 1)
        const ms = performance.now() - s
        if (r.n !== 1) throw new Error(`${name}: ttft run generated ${r.n} tokens`)
        return { ms, engineMs: r.ttftMs }
      })
    } else if (t.kind === 'tg') {
      runs = await repeat(cfg, async () => {
        const s = performance.now()
        const r = await engine.generate(ids, t.newTokens)
        const wallMs = performance.now() - s
        if (r.n !== t.newTokens) throw new Error(`${name}: ${t.id} generated ${r.n} of ${t.newTokens} tokens`)
        return { ttftMs: r.ttftMs, decodeMs: r.decodeMs, n: r.n, wallMs }
      })
    }
    out.tests[t.id] = runs
    log(name, t.id, JSON.stringify(summary(t, runs)))
  }
  out.peakRssKb = memKb().hwm
  writeFileSync(outPath, JSON.stringify(out))
  log(name, `peak RSS ${(out.peakRssKb / 1024).toFixed(0)} MiB`)
}

function summary(t, runs) {
  const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]
  if (t.kind === 'pp') return { tokPerS: Math.round(med(runs.map((r) => (t.promptTokens / r.ms) * 1000))) }
  if (t.kind === 'ttft') return { ms: Math.round(med(runs.map((r) => r.ms))) }
  return { tokPerS: +med(runs.map((r) => ((r.n - 1) / r.decodeMs) * 1000)).toFixed(1) }
}

/** Top-k (id, logit) of a logits row, best first. */
export function topK(row, k) {
  const best = []
  for (let i = 0; i < row.length; i++) {
    const v = row[i]
    if (best.length < k || v > best[best.length - 1].logit) {
      best.push({ id: i, logit: v })
      best.sort((a, b) => b.logit - a.logit)
      if (best.length > k) best.pop()
    }
  }
  return best.map((b) => ({ id: b.id, logit: Number(b.logit) }))
}
