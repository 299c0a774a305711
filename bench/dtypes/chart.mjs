// The dtype benchmark as a chart: decode (tg128) and prompt (pp512) tokens/s for each weight dtype,
// a bar per engine (n/a where the engine has no such type).
//   node bench/dtypes/chart.mjs bench/results/<date>-dtypes.json    writes <date>-dtypes.svg beside it
// bench/dtypes/run.mjs writes it too.
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { barChart } from '../render.mjs'

const DTYPES = ['fp32', 'bf16', 'fp16', 'q8', 'q4']

/** The SVG of a `<date>-dtypes.json` document. */
export function dtypeChart(doc) {
  const measured = doc.results.filter((r) => !r.error)
  const names = [...new Set(measured.map((r) => r.engine))]
  const panel = (title, test) => ({
    title,
    groups: DTYPES.map((dtype) => ({
      label: dtype,
      bars: Object.fromEntries(
        names.map((n) => [n, measured.find((r) => r.engine === n && r.dtype === dtype)?.[test]]),
      ),
    })),
  })
  return barChart({
    title: `GPT-2 124M-shaped by weight dtype, ${doc.config.threads} threads, median of ${doc.config.reps} — ${doc.date}`,
    subtitle: `${doc.machine.cpu}; DRAM read ${doc.bandwidth.bestGBps} GB/s; whiskers: min–max; n/a: the engine has no such type`,
    names,
    panels: [panel('Decode (tg128), tokens/s', 'tg128'), panel('Prompt (pp512), tokens/s', 'pp512')],
    footnote:
      'The same seeded-random weights in every engine, converted by bench/make_checkpoint.py (GGUF, ONNX) or on load (ours, PyTorch). bench/README.md',
    width: 1400,
    labelSize: 10,
  })
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const path = process.argv[2]
  if (!path) {
    console.error('usage: node bench/dtypes/chart.mjs bench/results/<date>-dtypes.json')
    process.exit(2)
  }
  writeFileSync(path.replace(/\.json$/, '.svg'), dtypeChart(JSON.parse(readFileSync(path, 'utf8'))))
}
