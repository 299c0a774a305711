// `fromPretrained(dir, { packedCacheDir })`: the first load writes the packed matrices to a file,
// later loads map it and compute exactly what a load without the cache computes; a damaged,
// stale or unwritable cache never fails a load nor changes its numbers.
import { mkdtempSync, readdirSync, readFileSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'

import { type Dtype, Gpt2 } from '../index'
import { FIXTURES, TINY_MODEL } from './helpers/fixtures'
import { copyOfTinyModel } from './helpers/model-dirs'

const PROMPT = 'Hello there, general'

function freshDir(): string {
  return mkdtempSync(join(tmpdir(), 'nexttoken-packed-'))
}

/** The cache files in `dir` (temporary files start with a dot). */
function cacheFiles(dir: string): string[] {
  return readdirSync(dir).filter((name) => name.endsWith('.packed'))
}

async function logitsOf(model: string, options: { dtype?: Dtype; packedCacheDir?: string } = {}) {
  const gpt2 = await Gpt2.fromPretrained(model, options)
  try {
    return await gpt2.logits(PROMPT, { positions: 'all' })
  } finally {
    gpt2.dispose()
  }
}

for (const dtype of ['fp32', 'bf16', 'fp16', 'q8', 'q4'] as const) {
  test(`${dtype}: a load from the cache computes exactly what a load without it does`, async (t) => {
    const cache = freshDir()
    const uncached = await logitsOf(TINY_MODEL, { dtype })
    const writing = await logitsOf(TINY_MODEL, { dtype, packedCacheDir: cache })
    t.deepEqual(cacheFiles(cache).length, 1)
    t.deepEqual(readdirSync(cache), cacheFiles(cache), 'no temporary file is left behind')
    const written = statSync(join(cache, cacheFiles(cache)[0]))
    const mapped = await logitsOf(TINY_MODEL, { dtype, packedCacheDir: cache })
    t.deepEqual(writing, uncached)
    t.deepEqual(mapped, uncached)
    t.is(statSync(join(cache, cacheFiles(cache)[0])).mtimeMs, written.mtimeMs, 'a found file is not rewritten')
  })
}

test('later loads read the cache file: matrices swapped in its footer (hashes and all) change their logits', async (t) => {
  // Bytes changed in place fail their matrix's hash (catalogue/packed-cache.spec.ts); two entries
  // of one shape swapped, each with its own hash, pass every check and are what the model runs.
  const cache = freshDir()
  const uncached = await logitsOf(TINY_MODEL, { dtype: 'fp32', packedCacheDir: cache })
  const file = join(cache, cacheFiles(cache)[0])
  const bytes = readFileSync(file)
  const footerStart = bytes.length - 16 - Number(bytes.readBigUInt64LE(bytes.length - 16))
  // Edited as text: JSON.parse would round the key's nanosecond times, and a changed key is a miss.
  const footer = bytes.subarray(footerStart, bytes.length - 16).toString('utf8')
  const entry = (layer: number) =>
    footer.match(new RegExp(`"h\\.${layer}\\.attn\\.c_proj\\.weight":\\{[^}]*\\}`))?.[0] ?? ''
  const [a, b] = [entry(0), entry(1)]
  t.true(a !== '' && b !== '', 'both layers are in the file')
  const swapped = footer.replace(a, '\0').replace(b, a.replace('h.0.', 'h.1.')).replace('\0', b.replace('h.1.', 'h.0.'))
  const json = Buffer.from(swapped)
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(BigInt(json.length))
  writeFileSync(file, Buffer.concat([bytes.subarray(0, footerStart), json, length, bytes.subarray(bytes.length - 8)]))
  const tampered = await logitsOf(TINY_MODEL, { dtype: 'fp32', packedCacheDir: cache })
  t.notDeepEqual(tampered, uncached)
})

test('a truncated or garbage cache file is packed and written again', async (t) => {
  const cache = freshDir()
  const expected = await logitsOf(TINY_MODEL, { dtype: 'q8', packedCacheDir: cache })
  const file = join(cache, cacheFiles(cache)[0])
  const size = statSync(file).size
  truncateSync(file, Math.floor(size / 2))
  t.deepEqual(await logitsOf(TINY_MODEL, { dtype: 'q8', packedCacheDir: cache }), expected)
  t.is(statSync(file).size, size, 'rewritten whole')
  writeFileSync(file, 'not a cache file')
  t.deepEqual(await logitsOf(TINY_MODEL, { dtype: 'q8', packedCacheDir: cache }), expected)
  t.is(statSync(file).size, size)
})

test('each dtype has its own file, and a changed checkpoint replaces its file', async (t) => {
  const cache = freshDir()
  const model = copyOfTinyModel()
  await logitsOf(model, { dtype: 'q8', packedCacheDir: cache })
  await logitsOf(model, { dtype: 'fp32', packedCacheDir: cache })
  t.is(cacheFiles(cache).length, 2)
  const before = new Map(cacheFiles(cache).map((name) => [name, statSync(join(cache, name)).mtimeMs]))
  // The same bytes with another modification time: the key no longer matches.
  const later = new Date(Date.now() + 60_000)
  utimesSync(join(model, 'model.safetensors'), later, later)
  const expected = await logitsOf(model, { dtype: 'q8' })
  t.deepEqual(await logitsOf(model, { dtype: 'q8', packedCacheDir: cache }), expected)
  t.is(cacheFiles(cache).length, 2, 'the q8 file was replaced, not added to')
  const changed = cacheFiles(cache).filter((name) => statSync(join(cache, name)).mtimeMs !== before.get(name))
  t.is(changed.length, 1)
})

test('concurrent loads into one cache directory all compute the same numbers', async (t) => {
  const cache = freshDir()
  const expected = await logitsOf(TINY_MODEL, { dtype: 'bf16' })
  const all = await Promise.all(
    Array.from({ length: 4 }, () => logitsOf(TINY_MODEL, { dtype: 'bf16', packedCacheDir: cache })),
  )
  for (const logits of all) t.deepEqual(logits, expected)
  t.deepEqual(readdirSync(cache), cacheFiles(cache))
  t.is(cacheFiles(cache).length, 1)
})

test('a GGUF file is cached too', async (t) => {
  const cache = freshDir()
  const gguf = join(FIXTURES, 'tiny-gpt2-q8_0.gguf')
  const expected = await logitsOf(gguf)
  t.deepEqual(await logitsOf(gguf, { packedCacheDir: cache }), expected)
  t.is(cacheFiles(cache).length, 1)
  t.deepEqual(await logitsOf(gguf, { packedCacheDir: cache }), expected)
})

test('a cache directory that cannot be written does not fail the load', async (t) => {
  const notADir = join(freshDir(), 'file')
  writeFileSync(notADir, 'a regular file')
  const expected = await logitsOf(TINY_MODEL)
  t.deepEqual(await logitsOf(TINY_MODEL, { packedCacheDir: notADir }), expected)
  t.deepEqual(await logitsOf(TINY_MODEL, { packedCacheDir: join(notADir, 'below') }), expected)
})

test('packedCacheDir must be a non-empty string', async (t) => {
  for (const packedCacheDir of ['', 42, true, null]) {
    await t.throwsAsync(
      // @ts-expect-error: deliberately wrong types
      Gpt2.fromPretrained(TINY_MODEL, { packedCacheDir }),
      { code: 'ERR_INVALID_ARG', message: /packedCacheDir/ },
    )
  }
})
