// What a Hub load accepts from its caller and from the repo, and how far a server can push it
// (issue 33, item 5): revisions are git ref names and every cache path stays under its folder; a
// download stops as soon as it passes the size declared for it, and it has an overall deadline
// next to the stall timeout; shard names are plain file names, and a NUL in one is our coded
// error. Against a raw-socket stand-in Hub (__test__/helpers/raw-hub.ts).
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import test, { type ExecutionContext } from 'ava'

import { type ErrorCode, Gpt2, type LoadOptions, NexttokenError } from '../../index'
import { badRevision, under } from '../../lib/hub/cache'
import { DEADLINE_GRACE_S, deadlineS, MIN_BYTES_PER_S, UNDECLARED_MAX_BYTES } from '../../lib/hub/http'
import { hubSettings } from '../../lib/hub/settings'
import { COMMIT, endless, FILES, gitSha1, normalReply, RawHub, type RawReply, trickle } from '../helpers/raw-hub'

const hub = new RawHub().start()
test.after.always(async () => (await hub).stop())

/** A cache in a folder of its own, so that anything written beside it shows. */
function sandbox() {
  const root = mkdtempSync(join(tmpdir(), 'nexttoken-hub-limits-'))
  const cacheDir = join(root, 'cache')
  return { root, cacheDir }
}

async function load(repo: string, options: LoadOptions = {}) {
  return Gpt2.fromPretrained(repo, { endpoint: (await hub).url, ...options })
}

async function rejects(t: ExecutionContext, loading: Promise<unknown>, code: ErrorCode, message: RegExp) {
  const err = await t.throwsAsync(loading, { instanceOf: NexttokenError })
  t.is(err?.code, code, err?.message)
  t.regex(err?.message ?? '', message)
  return err
}

// Revisions.

const BAD_REVISIONS = [
  '../../../../x',
  '..',
  'a/../b',
  'main..other',
  '.hidden',
  'a/.b',
  'x.lock',
  'a/b.lock/c',
  'ends.',
  '/main',
  'main/',
  'a//b',
  '@',
  'main@{1}',
  'a b',
  'a\tb',
  'a\nb',
  'a\0b',
  'a\x7fb',
  'a~1',
  'a^2',
  'a:b',
  'a?b',
  'a*b',
  'a[b',
  'a\\b',
  'x'.repeat(256),
]

test('a revision that is no git ref name is ERR_INVALID_ARG, before any request, and nothing is written', async (t) => {
  const server = await hub
  for (const revision of BAD_REVISIONS) {
    const { root, cacheDir } = sandbox()
    const from = server.requests.length
    await rejects(
      t,
      load('limits/revisions', { cacheDir, revision }),
      'ERR_INVALID_ARG',
      /revision .* is not a branch, tag or commit name/,
    )
    t.is(server.requests.length, from, `no request for ${JSON.stringify(revision)}`)
    t.deepEqual(readdirSync(root), [], `nothing written for ${JSON.stringify(revision)}`)
  }
})

test('branches, tags, commits and the Hub pull-request refs are revisions: their refs stay under refs/', async (t) => {
  for (const revision of ['main', 'v1.0', 'feature/x-y_z', 'refs/pr/1', 'release-2026.12', COMMIT]) {
    const { root, cacheDir } = sandbox()
    const model = await load('limits/good-revisions', { cacheDir, revision })
    await model.dispose()
    t.deepEqual(readdirSync(root), ['cache'])
    const storage = join(cacheDir, 'models--limits--good-revisions')
    if (revision !== COMMIT) t.is(readFileSync(join(storage, 'refs', ...revision.split('/')), 'utf8'), COMMIT)
    // Offline, the ref found again.
    const again = await load('limits/good-revisions', { cacheDir, revision, offline: true })
    await again.dispose()
  }
  t.is(badRevision('refs/pr/1'), undefined)
})

test('every cache path is asserted to stay under its folder', (t) => {
  const base = join(tmpdir(), 'base')
  t.is(under(base, 'a', 'b'), join(base, 'a', 'b'))
  t.is(under(base, 'refs/pr/1'), join(base, 'refs', 'pr', '1'))
  for (const parts of [
    ['..'],
    ['..', 'x'],
    ['a', '..', '..', 'x'],
    ['a/../../x'],
    [''],
    ['.'],
    ['a\0b'],
    ['/etc', '..', '..'],
  ]) {
    const err = t.throws(() => under(base, ...parts), { instanceOf: NexttokenError }, JSON.stringify(parts))
    t.is(err?.code, 'ERR_INVALID_ARG')
  }
})

test('a NUL in cacheDir is ERR_INVALID_ARG, not Node ERR_INVALID_ARG_VALUE', async (t) => {
  await rejects(
    t,
    load('limits/nul', { cacheDir: `${tmpdir()}/a\0b` }),
    'ERR_INVALID_ARG',
    /cacheDir must not contain a NUL/,
  )
})

// Sizes and time.

test('a body past its declared size is cut off there: without a Content-Length, and with one too large', async (t) => {
  const server = await hub
  const huge = 300 * 1024 * 1024
  const streamed = { bytes: 0 }
  // The HEAD says 829 bytes; the GET streams 300 MB with no length (to the connection's end).
  server.faults.set('limits/streamed', (request, reply) => {
    if (request.file !== 'config.json') return reply
    const headers = { ...reply.headers, 'content-length': '829' }
    if (request.method === 'HEAD') return { ...reply, headers }
    return { status: 200, headers: { 'x-repo-commit': COMMIT }, body: endless(huge, streamed) }
  })
  const { cacheDir } = sandbox()
  await rejects(
    t,
    load('limits/streamed', { cacheDir }),
    'ERR_NETWORK',
    /config\.json sent more than the 829 bytes declared for it/,
  )
  t.true(streamed.bytes < 32 * 1024 * 1024, `the server got to write ${streamed.bytes} bytes`)

  // The same 300 MB announced: refused before a byte of the body is read.
  const announced = { bytes: 0 }
  server.faults.set('limits/announced', (request, reply) => {
    if (request.file !== 'config.json') return reply
    const headers = { ...reply.headers, 'content-length': '829' }
    if (request.method === 'HEAD') return { ...reply, headers }
    return { status: 200, headers: { 'content-length': String(huge) }, body: endless(huge, announced) }
  })
  await rejects(
    t,
    load('limits/announced', { cacheDir: sandbox().cacheDir }),
    'ERR_NETWORK',
    /more than the 829 bytes declared/,
  )
  t.true(announced.bytes < 32 * 1024 * 1024, `the server got to write ${announced.bytes} bytes`)
  // No blob, no partial download left.
  const blobs = join(cacheDir, 'models--limits--streamed', 'blobs')
  t.deepEqual(existsSync(blobs) ? readdirSync(blobs) : [], [])
})

test('an undeclared size is bounded too, and the deadline scales with the size', (t) => {
  t.is(UNDECLARED_MAX_BYTES, 256 * 1024 * 1024)
  t.is(deadlineS(0), DEADLINE_GRACE_S)
  t.is(deadlineS(500_000_000), DEADLINE_GRACE_S + 500_000_000 / MIN_BYTES_PER_S)
  t.is(deadlineS(undefined), deadlineS(UNDECLARED_MAX_BYTES))
  const env = { HOME: '/home/u' }
  t.is(hubSettings({}, env).downloadDeadlineS, undefined)
  t.is(hubSettings({}, { ...env, NEXTTOKEN_HUB_DOWNLOAD_DEADLINE: '30' }).downloadDeadlineS, 30)
  t.is(hubSettings({}, { ...env, NEXTTOKEN_HUB_DOWNLOAD_DEADLINE: 'soon' }).downloadDeadlineS, undefined)
})

test.serial('a trickle that never stalls still ends at the overall deadline', async (t) => {
  const server = await hub
  // A byte every 100 ms: the stall timeout (HF_HUB_DOWNLOAD_TIMEOUT, 10 s) never fires.
  server.faults.set('limits/trickle', (request, reply) =>
    request.file === 'config.json' && request.method === 'GET'
      ? { ...reply, body: trickle(FILES['config.json'], 100) }
      : reply,
  )
  process.env.NEXTTOKEN_HUB_DOWNLOAD_DEADLINE = '1.5'
  try {
    await rejects(
      t,
      load('limits/trickle', { cacheDir: sandbox().cacheDir }),
      'ERR_NETWORK',
      /config\.json: the download did not finish in 1\.5 s/,
    )
  } finally {
    delete process.env.NEXTTOKEN_HUB_DOWNLOAD_DEADLINE
  }
})

// Shard names.

/** A repo whose only weights are an index with this `weight_map`. */
function shardedRepo(server: RawHub, repo: string, weightMap: Record<string, unknown>) {
  const index = Buffer.from(JSON.stringify({ metadata: {}, weight_map: weightMap }))
  server.faults.set(repo, (request, reply): RawReply => {
    if (request.file === 'model.safetensors') return normalReply('missing', request.method)
    if (request.file !== 'model.safetensors.index.json') return reply
    return {
      status: 200,
      headers: { 'x-repo-commit': COMMIT, 'content-length': String(index.length), etag: `"${gitSha1(index)}"` },
      body: request.method === 'HEAD' ? Buffer.alloc(0) : index,
    }
  })
}

const BAD_SHARDS: unknown[] = [
  '../escaped.safetensors',
  '../../../../tmp/x',
  'sub/model.safetensors',
  'sub\\model.safetensors',
  'model\0.safetensors',
  '..',
  '.',
  '',
  'model?.safetensors',
  'modèle.safetensors',
  'a b.safetensors',
  `${'x'.repeat(256)}.safetensors`,
  42,
  null,
]

test('a shard name that is not [\\w.-]+ is ERR_MODEL_INVALID naming it; a NUL in one too', async (t) => {
  const server = await hub
  for (const [i, shard] of BAD_SHARDS.entries()) {
    const repo = `limits/shards-${i}`
    shardedRepo(server, repo, { 'wte.weight': shard, 'wpe.weight': 'model-00001-of-00001.safetensors' })
    const { root, cacheDir } = sandbox()
    mkdirSync(cacheDir)
    const err = await rejects(
      t,
      load(repo, { cacheDir }),
      'ERR_MODEL_INVALID',
      /names a shard .*: a shard is a file name/,
    )
    t.true(err?.message.includes(JSON.stringify(shard)), err?.message)
    t.deepEqual(readdirSync(root), ['cache'])
  }
})

test('a shard name of letters, digits, _ . and - passes the check (the Hub then says it is missing)', async (t) => {
  const server = await hub
  shardedRepo(server, 'limits/shards-ok', { 'wte.weight': 'model_v1.0-00001-of-00002.safetensors' })
  await rejects(
    t,
    load('limits/shards-ok', { cacheDir: sandbox().cacheDir }),
    'ERR_MODEL_NOT_FOUND',
    /has no model_v1\.0-00001-of-00002\.safetensors/,
  )
})
