#!/usr/bin/env node
// Renders a results JSON (harness.mjs) as a markdown table and a hand-written SVG bar chart.
//   node render.mjs results/<date>.json     re-renders <date>.md and <date>.svg next to it
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const OURS = 'nexttoken'
const COLORS = { nexttoken: '#d9480f', pytorch: '#1c7ed6', 'transformers.js': '#f59f00', 'node-llama-cpp': '#2f9e44' }
const color = (name, i) => COLORS[name] ?? ['#7048e8', '#0ca678', '#e64980'][i % 3]

const fmt = (x, d) => {
  if (x == null || !Number.isFinite(x)) return '–'
  const digits = d ?? (Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2)
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

function rows(doc) {
  const ceil = doc.ceilings
  const peak = doc.machine.matmulPeak?.bestGflops
  const dram = doc.machine.dramRead?.bestGBps
  return [
    { label: 'pp128 tok/s', get: (s) => s.tests.pp128?.tokPerS, ceiling: ceil.prefillTokPerS?.pp128, higher: true },
    { label: 'pp512 tok/s', get: (s) => s.tests.pp512?.tokPerS, ceiling: ceil.prefillTokPerS?.pp512, higher: true },
    { label: 'tg128 tok/s', get: (s) => s.tests.tg128?.tokPerS, ceiling: ceil.decodeTokPerS, higher: true },
    {
      label: 'tg128 @ d512 tok/s',
      get: (s) => s.tests['tg128@d512']?.tokPerS,
      ceiling: ceil.decodeTokPerS,
      higher: true,
    },
    { label: 'TTFT, 128-token prompt, ms', get: (s) => s.tests.ttft128?.ms, higher: false },
    { label: 'load, ms', get: (s) => (s.loadMs != null ? { median: s.loadMs } : null), higher: false },
    {
      label: 'peak RSS, MiB',
      get: (s) => (s.peakRssMiB != null ? { median: s.peakRssMiB } : null),
      higher: false,
      digits: 0,
    },
    { section: 'efficiency' },
    { label: 'pp128 GFLOP/s', get: (s) => s.tests.pp128?.gflops, ceiling: peak, pct: peak, higher: true },
    { label: 'pp512 GFLOP/s', get: (s) => s.tests.pp512?.gflops, ceiling: peak, pct: peak, higher: true },
    { label: 'tg128 GB/s of weights', get: (s) => s.tests.tg128?.gbps, ceiling: dram, pct: dram, higher: true },
    {
      label: 'tg128 @ d512 GB/s of weights',
      get: (s) => s.tests['tg128@d512']?.gbps,
      ceiling: dram,
      pct: dram,
      higher: true,
    },
  ]
}

export function render(doc) {
  const names = Object.keys(doc.engines)
  const sum = (n) => doc.engines[n]?.summary
  const m = doc.machine
  const p = doc.protocol
  const ck = doc.checkpoint
  const lines = []
  lines.push(`# nexttoken benchmark, ${doc.date}`, '')
  if (p.reps < 5)
    lines.push(
      `> **Trial run:** ${p.reps} repetition(s) per test (the protocol asks for ≥ 5). Not a result to quote.`,
      '',
    )
  const la = m.loadAvgAtStart?.[0]
  if (la > 0.5)
    lines.push(
      `> **Noisy machine:** load average ${m.loadAvgAtStart.join(' ')} at the start (${m.loadAvgAtEnd?.join(' ')} at the end); other work shared the ${m.logicalCpus} CPUs.`,
      '',
    )
  lines.push(
    `GPT-2 124M shape (seeded random weights, ${ck.dtypes.join('/')}, ${fmt(ck.params / 1e6, 1)} M params, ${fmt(ck.tensorBytes / 1e6, 1)} MB of tensors), ` +
      `the same weights and the same prompt ids in every engine, ${p.threads} threads each, engines one after another in their own processes, ` +
      `greedy with eos ignored, fresh KV cache per repetition, ${p.warmup} warm-up + ${p.reps} repetition(s); **median** (min–max). ` +
      `Ratios are × ${OURS}: for tok/s and GB/s above 1 means faster than ${OURS}; for ms and MiB above 1 means more than ${OURS}.`,
    '',
  )
  const dram = m.dramRead?.bestGBps
  const peak = m.matmulPeak?.bestGflops
  lines.push(
    `**Machine:** ${m.cpu}, ${m.logicalCpus} logical CPUs (${m.flags.join(', ')}), ${m.memGiB} GiB. ` +
      `DRAM read **${fmt(dram, 1)} GB/s** (${m.dramRead?.what ?? m.dramRead?.error}` +
      `${m.dramRead?.before != null ? `: ${fmt(m.dramRead.before, 1)} before, ${fmt(m.dramRead.after, 1)} after` : ''}). ` +
      `f32 matmul **${fmt(peak, 0)} GFLOP/s** (${m.matmulPeak?.what ?? m.matmulPeak?.error}, ${m.matmulPeak?.threads} threads, best of ${m.matmulPeak?.calls}). ` +
      `Ceilings: decode = DRAM read / ${fmt(ck.decodeBytesPerToken / 1e6, 1)} MB per token; prefill = matmul peak / FLOPs per token.`,
    '',
  )

  const header = ['', ...names.map((n) => (n === OURS ? `**${n}**` : n)), 'ceiling']
  lines.push(`| ${header.join(' | ')} |`, `|${header.map((_, i) => (i === 0 ? ':--' : '--:')).join('|')}|`)
  for (const r of rows(doc)) {
    if (r.section) {
      lines.push(`| *${r.section}* | ${names.map(() => ' ').join(' | ')} | |`)
      continue
    }
    const ours = sum(OURS) && r.get(sum(OURS))
    const cells = names.map((n) => {
      const s = sum(n)
      if (!s) return doc.engines[n]?.error ? `failed: ${doc.engines[n].error}` : '–'
      const v = r.get(s)
      if (!v) return '–'
      let c = fmt(v.median, r.digits)
      if (n === OURS) c = `**${c}**`
      if (v.n > 1) c += ` (${fmt(v.min, r.digits)}–${fmt(v.max, r.digits)})`
      if (r.pct) c += ` ${fmt((100 * v.median) / r.pct, 0)}%`
      if (n !== OURS && ours?.median) c += `, ${fmt(v.median / ours.median, 2)}×`
      return c
    })
    lines.push(`| ${r.label} | ${cells.join(' | ')} | ${r.ceiling ? fmt(r.ceiling, r.digits) : ''} |`)
  }

  const cc = doc.crossCheck
  const ref = p.crossCheck.reference
  lines.push(
    `| *cross-check* | ${names.map(() => ' ').join(' | ')} | |`,
    `| greedy ${p.crossCheck.newTokens} ids after ${p.crossCheck.promptTokens} prompt ids, vs ${ref} | ${names
      .map((n) => {
        const c = cc[n]
        if (!c) return '–'
        if (n === ref) return `reference (${c.distinct} distinct ids)`
        return c.identical ? 'identical' : `**differ** from id ${c.matchingPrefix}`
      })
      .join(' | ')} | |`,
    `| top-10 logits after the prompt, max abs diff vs ${ref} | ${names
      .map((n) => {
        const c = cc[n]
        if (n === ref) return 'reference'
        if (!c || c.top10MaxAbsDiff == null) return 'n/a'
        return `${c.top10MaxAbsDiff.toExponential(1)}${c.top10SameIds ? '' : ' (other ids)'}`
      })
      .join(' | ')} | |`,
    `| version | ${names.map((n) => version(doc.engines[n])).join(' | ')} | |`,
    '',
  )
  lines.push(
    'pp*N*: one forward pass over *N* prompt tokens from an empty cache, logits of the last position only. ' +
      'tg128: 128 greedy tokens after a 1-token prompt; tg128 @ d512: after a 512-token prompt; both report (128 − 1) / (time of token 128 − time of token 1), ' +
      'so the prompt pass is not in them. TTFT: wall time of a 1-token generate call on a 128-token prompt. ' +
      "GFLOP/s counts the blocks' matmuls (2 × params × tokens), causal attention (QKᵀ, AV) and one row of lm_head; " +
      "GB/s of weights = tok/s × bytes of weights read per token; a percentage is the share of the ceiling column. See bench/README.md for what each engine's timing includes.",
    '',
  )
  return { md: lines.join('\n'), svg: svg(doc) }
}

function version(e) {
  if (!e?.info) return '–'
  const i = e.info
  const extra = [
    i.torch && `torch ${i.torch}`,
    i.onnxruntimeNode && `onnxruntime-node ${i.onnxruntimeNode}`,
    i.llamaCpp && `llama.cpp binaries ${i.llamaCpp}`,
  ].filter(Boolean)
  return [i.version, ...extra].join(', ')
}

// ---------------------------------------------------------------------------------------------
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

function svg(doc) {
  const names = Object.keys(doc.engines)
  const stat = (n, id) => doc.engines[n]?.summary?.tests?.[id]?.tokPerS
  const panel = (title, tests, ceiling, ceilingLabel) => ({
    title,
    groups: tests.map(([id, label]) => ({
      label,
      ceiling: ceiling(id) && { value: ceiling(id), label: `${ceilingLabel} ${fmt(ceiling(id), 0)}` },
      bars: Object.fromEntries(names.map((n) => [n, stat(n, id)])),
    })),
  })
  const m = doc.machine
  return barChart({
    title: `GPT-2 124M f32, ${doc.protocol.threads} threads, median of ${doc.protocol.reps}${doc.protocol.reps < 5 ? ' (trial)' : ''} — ${doc.date}`,
    subtitle: `${m.cpu}; DRAM read ${fmt(m.dramRead?.bestGBps, 1)} GB/s; f32 matmul ${fmt(m.matmulPeak?.bestGflops, 0)} GFLOP/s; whiskers: min–max`,
    names,
    panels: [
      panel(
        'Prefill, tokens/s',
        [
          ['pp128', 'pp128'],
          ['pp512', 'pp512'],
        ],
        (id) => doc.ceilings.prefillTokPerS?.[id],
        'matmul peak',
      ),
      panel(
        'Decode, tokens/s',
        [
          ['tg128', 'tg128'],
          ['tg128@d512', 'tg128 @ d512'],
        ],
        () => doc.ceilings.decodeTokPerS,
        'DRAM bound',
      ),
    ],
    footnote:
      'pp: prompt tokens/s (last-position logits); tg: decode tokens/s after the first token; same seeded-random weights in every engine. bench/README.md',
  })
}

/**
 * A hand-written SVG bar chart: panels side by side, each a row of groups with one bar per name
 * (`{ median, min, max, n }`, whiskers min–max; a missing one shows "n/a") and an optional
 * dashed ceiling `{ value, label }` per group. Colours follow the legend's names; `width` and
 * the values' `labelSize` make room for more bars.
 */
export function barChart({ title, subtitle, names, panels, footnote, width = 960, labelSize = 11 }) {
  const W = width
  const H = 400
  const top = 78
  const bottom = 60
  const panelW = W / panels.length
  const out = []
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">`,
  )
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`)
  out.push(`<text x="16" y="22" font-size="15" font-weight="600" fill="#212529">${esc(title)}</text>`)
  out.push(`<text x="16" y="40" fill="#495057">${esc(subtitle)}</text>`)
  let lx = 16
  names.forEach((n, i) => {
    out.push(
      `<rect x="${lx}" y="50" width="12" height="12" fill="${color(n, i)}"/><text x="${lx + 16}" y="60" fill="#212529">${esc(n)}</text>`,
    )
    lx += 30 + n.length * 7
  })
  panels.forEach((panel, pi) => {
    const x0 = pi * panelW + 56
    const x1 = (pi + 1) * panelW - 16
    const y0 = top + 18
    const y1 = H - bottom
    const vals = []
    for (const group of panel.groups) {
      for (const n of names) {
        const v = group.bars[n]
        if (v) vals.push(v.max)
      }
      if (group.ceiling) vals.push(group.ceiling.value)
    }
    const vmax = niceMax(Math.max(1, ...vals))
    const y = (v) => y1 - ((y1 - y0) * v) / vmax
    out.push(
      `<text x="${x0}" y="${top + 8}" font-size="13" font-weight="600" fill="#212529">${esc(panel.title)}</text>`,
    )
    for (let k = 0; k <= 4; k++) {
      const v = (vmax * k) / 4
      out.push(`<line x1="${x0}" x2="${x1}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e9ecef"/>`)
      out.push(
        `<text x="${x0 - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" fill="#868e96">${fmt(v, Number.isInteger(v) ? 0 : 1)}</text>`,
      )
    }
    out.push(`<line x1="${x0}" x2="${x1}" y1="${y1}" y2="${y1}" stroke="#adb5bd"/>`)
    const groupW = (x1 - x0) / panel.groups.length
    panel.groups.forEach((group, gi) => {
      const gx = x0 + gi * groupW
      const barW = Math.min(44, (groupW - 40) / names.length)
      const bx0 = gx + (groupW - barW * names.length) / 2
      const c = group.ceiling
      if (c) {
        out.push(
          `<line x1="${(gx + 8).toFixed(1)}" x2="${(gx + groupW - 8).toFixed(1)}" y1="${y(c.value).toFixed(1)}" y2="${y(c.value).toFixed(1)}" stroke="#495057" stroke-dasharray="5 4"/>`,
        )
        out.push(
          `<text x="${(gx + groupW - 8).toFixed(1)}" y="${(y(c.value) - 4).toFixed(1)}" text-anchor="end" fill="#495057">${esc(c.label)}</text>`,
        )
      }
      names.forEach((n, i) => {
        const v = group.bars[n]
        const bx = bx0 + i * barW
        if (!v) {
          out.push(
            `<text x="${(bx + barW / 2).toFixed(1)}" y="${y1 - 4}" text-anchor="middle" fill="#adb5bd">n/a</text>`,
          )
          return
        }
        out.push(
          `<rect x="${(bx + 2).toFixed(1)}" y="${y(v.median).toFixed(1)}" width="${(barW - 4).toFixed(1)}" height="${(y1 - y(v.median)).toFixed(1)}" fill="${color(n, i)}"><title>${esc(`${n} ${group.label}: ${fmt(v.median)} tok/s (${fmt(v.min)}–${fmt(v.max)})`)}</title></rect>`,
        )
        if (v.n > 1) {
          const cx = (bx + barW / 2).toFixed(1)
          out.push(
            `<line x1="${cx}" x2="${cx}" y1="${y(v.max).toFixed(1)}" y2="${y(v.min).toFixed(1)}" stroke="#212529" stroke-width="1"/>`,
          )
        }
        out.push(
          `<text x="${(bx + barW / 2).toFixed(1)}" y="${(y(v.max) - 5).toFixed(1)}" text-anchor="middle" font-size="${labelSize}" fill="#212529">${fmt(v.median, v.median >= 100 ? 0 : 1)}</text>`,
        )
      })
      out.push(
        `<text x="${(gx + groupW / 2).toFixed(1)}" y="${y1 + 18}" text-anchor="middle" font-size="13" fill="#212529">${esc(group.label)}</text>`,
      )
    })
  })
  out.push(`<text x="16" y="${H - 14}" fill="#868e96">${esc(footnote)}</text>`)
  out.push('</svg>')
  return `${out.join('\n')}\n`
}

function niceMax(v) {
  const e = 10 ** Math.floor(Math.log10(v))
  for (const f of [1, 1.2, 1.6, 2, 2.4, 3.2, 4, 4.8, 6, 8, 10]) if (f * e >= v * 1.08) return f * e
  return 10 * e
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const path = process.argv[2]
  if (!path) {
    console.error('usage: node render.mjs results/<date>.json')
    process.exit(2)
  }
  const doc = JSON.parse(readFileSync(path, 'utf8'))
  const { md, svg: s } = render(doc)
  writeFileSync(path.replace(/\.json$/, '.md'), md)
  writeFileSync(path.replace(/\.json$/, '.svg'), s)
  console.log(md)
}
