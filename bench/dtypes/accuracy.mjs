// What each weight dtype costs in accuracy, against fp32 on the same checkpoint: the logits of every
// position of a 1,024-token text, compared per position.
//
//   node bench/dtypes/accuracy.mjs [model dir = bench/models/gpt2-124m] [text file = bench/dtypes/text.md]
//
// Prints, per dtype: max and mean |logit - fp32 logit|, the KL divergence of the next-token
// distribution from fp32's (mean and p99 over positions, in nats) and top-1 agreement.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const { Gpt2 } = createRequire(import.meta.url)(root)
const [dir = join(root, 'bench', 'models', 'gpt2-124m'), textFile = join(root, 'bench', 'dtypes', 'text.md')] =
  process.argv.slice(2)
const TOKENS = 1024

/** log-softmax of `row` into a new Float64Array. */
function logSoftmax(row) {
  let max = -Infinity
  for (const x of row) max = Math.max(max, x)
  let sum = 0
  for (const x of row) sum += Math.exp(x - max)
  const lse = max + Math.log(sum)
  return Float64Array.from(row, (x) => x - lse)
}

const argmax = (row) => row.reduce((best, x, i) => (x > row[best] ? i : best), 0)

const reference = await Gpt2.fromPretrained(dir, { dtype: 'fp32' })
const ids = reference.tokenizer.encode(readFileSync(textFile, 'utf8')).slice(0, TOKENS)
if (ids.length < TOKENS) throw new Error(`${textFile} has only ${ids.length} tokens`)
const vocab = reference.config.vocabSize
const expected = await reference.logits(ids, { positions: 'all' })
await reference.dispose()

const rows = []
for (const dtype of ['bf16', 'fp16', 'q8', 'q4']) {
  const model = await Gpt2.fromPretrained(dir, { dtype })
  const got = await model.logits(ids, { positions: 'all' })
  await model.dispose()
  let maxDiff = 0
  let sumDiff = 0
  let agree = 0
  const kls = []
  for (let t = 0; t < TOKENS; t++) {
    const e = expected.subarray(t * vocab, (t + 1) * vocab)
    const g = got.subarray(t * vocab, (t + 1) * vocab)
    for (let i = 0; i < vocab; i++) {
      const d = Math.abs(g[i] - e[i])
      maxDiff = Math.max(maxDiff, d)
      sumDiff += d
    }
    const [p, q] = [logSoftmax(e), logSoftmax(g)]
    let kl = 0
    for (let i = 0; i < vocab; i++) kl += Math.exp(p[i]) * (p[i] - q[i])
    kls.push(kl)
    agree += argmax(e) === argmax(g)
  }
  kls.sort((a, b) => a - b)
  const row = {
    dtype,
    maxAbsLogitDiff: maxDiff,
    meanAbsLogitDiff: sumDiff / (TOKENS * vocab),
    klMean: kls.reduce((a, b) => a + b, 0) / TOKENS,
    klP99: kls[Math.floor(0.99 * (TOKENS - 1))],
    top1Agreement: agree / TOKENS,
  }
  rows.push(row)
  console.error(JSON.stringify(row))
}

const f = (x) => (x < 1e-3 ? x.toExponential(2) : x.toFixed(4))
console.log(
  `Against fp32 on ${dir.replace(`${root}/`, '')}, ${TOKENS} tokens of ${textFile.replace(`${root}/`, '')}:\n`,
)
console.log('| dtype | max abs logit diff | mean abs logit diff | KL mean (nats) | KL p99 (nats) | top-1 agreement |')
console.log('| --- | --: | --: | --: | --: | --: |')
for (const r of rows)
  console.log(
    `| ${r.dtype} | ${f(r.maxAbsLogitDiff)} | ${f(r.meanAbsLogitDiff)} | ${f(r.klMean)} | ${f(r.klP99)} | ${(100 * r.top1Agreement).toFixed(1)}% |`,
  )
