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

/** Largest absolute difference between two equally long rows (inf == inf counts as 0). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`)
  let max = 0
  for (let i = 0; i < a.length; i++) {
    const d = a[i] === b[i] ? 0 : Math.abs(a[i] - b[i])
    if (!(d <= max)) max = d // NaN propagates as a failure
  }
  return max
}
