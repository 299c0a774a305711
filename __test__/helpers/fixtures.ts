// Paths to the committed tiny model and readers for the goldens made by scripts/make_fixtures.py.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

export const FIXTURES = join(__dirname, '..', 'fixtures')
export const TINY_MODEL = join(FIXTURES, 'tiny-gpt2')
export const GOLDENS = join(FIXTURES, 'goldens')

export function readGolden<T>(name: string): T {
  return JSON.parse(readFileSync(join(GOLDENS, name), 'utf8')) as T
}

/** Rows of `width` little-endian f32 values from a golden binary file. */
export function readRows(file: string, width: number): (row: number) => Float32Array {
  const bytes = readFileSync(join(GOLDENS, file))
  const all = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)
  return (row) => all.subarray(row * width, (row + 1) * width)
}

/**
 * Largest |a[i] - b[i]| over two equally long rows, for `<= bound` checks. Equal values (an
 * infinity on both sides included) differ by 0; a NaN on either side, or an infinity the other
 * side does not equal, makes the result Infinity wherever it is in the row, so no bound passes.
 * (A running `max` that skips NaN comparisons would let the next finite difference hide it.)
 */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`)
  let max = 0
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue
    const d = Math.abs(a[i] - b[i]) // NaN if either is NaN, or for equal-signed infinities (equal above)
    if (Number.isNaN(d)) return Number.POSITIVE_INFINITY
    if (d > max) max = d
  }
  return max
}

/** Softmax of a row of logits in f64 (-inf entries get probability 0). */
export function softmax(logits: ArrayLike<number>): Float64Array {
  let max = Number.NEGATIVE_INFINITY
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i]
  const p = new Float64Array(logits.length)
  let sum = 0
  for (let i = 0; i < logits.length; i++) sum += p[i] = Math.exp(logits[i] - max)
  for (let i = 0; i < p.length; i++) p[i] /= sum
  return p
}

/**
 * KL(p || q) of the distributions two rows of logits give, in nats: how much `q` loses against
 * the reference `p`. Infinity where either row holds a NaN (a NaN never passes a bound).
 */
export function klDivergence(p: ArrayLike<number>, q: ArrayLike<number>): number {
  if (p.length !== q.length) throw new Error(`length ${p.length} != ${q.length}`)
  for (let i = 0; i < p.length; i++) if (Number.isNaN(p[i]) || Number.isNaN(q[i])) return Number.POSITIVE_INFINITY
  const [pp, qq] = [softmax(p), softmax(q)]
  let kl = 0
  for (let i = 0; i < pp.length; i++) if (pp[i] > 0) kl += pp[i] * Math.log(pp[i] / qq[i])
  return kl
}
