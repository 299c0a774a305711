// The catalogue of packed-cache files that are not what the cache wrote (issue 33, item 4): a
// matrix overwritten with NaN, a FIFO or a symlink where the file should be. None is used as it
// is, none hangs or fails the load, and each is packed and written again, so that the model
// computes what a load without the cache computes.
import { execFileSync } from 'node:child_process'
import {
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import test from 'ava'

import { Gpt2 } from '../../index'
import { TINY_MODEL } from '../helpers/fixtures'

const PROMPT = "I am learning about generative ai and LLM's"
// q8 and bf16 are packed on every CPU path (fp32 is not on every one).
const DTYPE = 'q8'

interface Entry {
  dtype: string
  k: number
  n: number
  start: number
  len: number
}

/** A fresh cache folder, and the path of its file once a load has written it. */
async function writtenCache(): Promise<{ dir: string; file: string }> {
  const dir = join(mkdtempSync(join(tmpdir(), 'nexttoken-packed-')), 'cache')
  await topK(dir)
  const [name] = readdirSync(dir).filter((f) => f.endsWith('.packed'))
  return { dir, file: join(dir, name) }
}

/** The matrices a cache file lists (its JSON footer, before its length and 8-byte magic). */
function matrices(file: string): Record<string, Entry> {
  const bytes = readFileSync(file)
  const length = Number(bytes.readBigUInt64LE(bytes.length - 16))
  const footer = bytes.subarray(bytes.length - 16 - length, bytes.length - 16)
  return JSON.parse(footer.toString('utf8')).matrices
}

async function topK(packedCacheDir?: string) {
  const model = await Gpt2.fromPretrained(TINY_MODEL, { dtype: DTYPE, packedCacheDir })
  try {
    return await model.topK(PROMPT, 5)
  } finally {
    await model.dispose()
  }
}

const expected = topK()

test('a new cache folder is readable by its user alone (0700)', async (t) => {
  const { dir } = await writtenCache()
  t.is(statSync(dir).mode & 0o777, 0o700)
})

test('token embeddings overwritten with NaN in the cache file: not used, rebuilt, and top-k is right', async (t) => {
  const { dir, file } = await writtenCache()
  const entries = matrices(file)
  // The output projection is the token embeddings (tied), whatever name it is packed under.
  const [name, wte] = Object.entries(entries).sort(([, a], [, b]) => b.len - a.len)[0]
  t.is(wte.n, 50257, `${name} is the vocabulary's matrix`)
  const bytes = readFileSync(file)
  bytes.fill(0xff, wte.start, wte.start + wte.len) // every scale and weight NaN (0xff..: NaN in f16 and f32)
  writeFileSync(file, bytes)
  t.deepEqual(await topK(dir), await expected)
  const rebuilt = readFileSync(file).subarray(wte.start, wte.start + wte.len)
  t.false(
    rebuilt.every((b) => b === 0xff),
    'the file was written again',
  )
  t.deepEqual(await topK(dir), await expected, 'and the rebuilt file is used')
})

test('a FIFO in the cache file’s place: the load neither waits on it nor fails, and a file replaces it', async (t) => {
  const { dir, file } = await writtenCache()
  rmSync(file)
  execFileSync('mkfifo', [file])
  // Opened without O_NONBLOCK, a FIFO with no writer blocks the load forever.
  t.deepEqual(await topK(dir), await expected)
  t.true(lstatSync(file).isFile())
})

test('a symlink in the cache file’s place is not followed, even to a good file', async (t) => {
  const { dir, file } = await writtenCache()
  const elsewhere = join(dir, '..', 'elsewhere.packed')
  renameSync(file, elsewhere)
  symlinkSync(elsewhere, file)
  const target = statSync(elsewhere).mtimeMs
  t.deepEqual(await topK(dir), await expected)
  t.true(lstatSync(file).isFile(), 'the link was replaced by a file of the cache’s own')
  t.is(statSync(elsewhere).mtimeMs, target, 'what it pointed to is untouched')
})
