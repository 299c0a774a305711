// fromPretrained with repo ids, against a stand-in Hub on 127.0.0.1 (no internet): the cache
// layout Python uses, the requests made, offline use, fallbacks, errors, revisions, resumed and
// aborted downloads, sharded and PyTorch checkpoints, progress.
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, lstatSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

import test, { type ExecutionContext } from 'ava'

import {
  AbortError,
  type DownloadProgress,
  type ErrorCode,
  Gpt2,
  type LoadOptions,
  NexttokenError,
  Tokenizer,
} from '../index'
import { hubSettings } from '../lib/hub/settings'
import { TINY_MODEL } from './helpers/fixtures'
import { hubRepos, TINY } from './helpers/hub-repos'
import { HubServer } from './helpers/hub-server'

const repos = hubRepos()
const hub = new HubServer(repos).start()
test.after.always(async () => (await hub).stop())

const PROMPT = 'The meaning of life is'
const expected = Gpt2.fromPretrained(TINY_MODEL).then((m) => m.generate(PROMPT, { maxNewTokens: 5 }))

const freshCache = () => mkdtempSync(join(tmpdir(), 'nexttoken-hub-'))
const mainCommit = repos[TINY].refs.main
const storage = (cacheDir: string, repoId = TINY) => join(cacheDir, `models--${repoId.replace('/', '--')}`)

async function load(repoId: string, options: LoadOptions = {}): Promise<Gpt2> {
  return Gpt2.fromPretrained(repoId, { endpoint: (await hub).hubUrl, ...options })
}

/** Loads, checks that the model generates what the fixture does, and disposes of it. */
async function loadsTheFixture(t: ExecutionContext, repoId: string, options: LoadOptions = {}) {
  const model = await load(repoId, options)
  t.deepEqual((await model.generate(PROMPT, { maxNewTokens: 5 })).newIds, (await expected).newIds)
  await model.dispose()
  return model
}

async function rejects(t: ExecutionContext, loading: Promise<unknown>, code: ErrorCode, message: RegExp) {
  const err = await t.throwsAsync(loading, { instanceOf: NexttokenError })
  t.is(err?.code, code, err?.message)
  t.regex(err?.message ?? '', message)
}

test.serial('first download: the cache is laid out as huggingface_hub lays it out', async (t) => {
  const server = await hub
  const cacheDir = freshCache()
  const from = server.requests.length
  await loadsTheFixture(t, TINY, { cacheDir, token: 'hf_some_token' })
  const repo = storage(cacheDir)
  t.is(readFileSync(join(repo, 'refs', 'main'), 'utf8'), mainCommit, 'refs/main holds the commit, no newline')
  t.true(existsSync(join(cacheDir, 'CACHEDIR.TAG')))
  const snapshot = join(repo, 'snapshots', mainCommit)
  const files = readdirSync(snapshot).sort()
  t.deepEqual(files, [
    'config.json',
    'generation_config.json',
    'model.safetensors',
    'tokenizer.json',
    'tokenizer_config.json',
  ])
  // (Windows without developer mode has no symlinks: there, as Python, we copy the blob.)
  for (const file of files.filter(() => process.platform !== 'win32')) {
    t.true(lstatSync(join(snapshot, file)).isSymbolicLink(), `${file} is a symlink`)
    t.regex(readlinkSync(join(snapshot, file)), /^\.\.\/\.\.\/blobs\/[0-9a-f]{40,64}$/, 'relative, to a blob')
  }
  const weights = readFileSync(join(TINY_MODEL, 'model.safetensors'))
  const sha = createHash('sha256').update(weights).digest('hex')
  t.true(existsSync(join(repo, 'blobs', sha)), 'an LFS blob is named by its sha256')
  t.false(readdirSync(join(repo, 'blobs')).some((name) => name.includes('incomplete')))
  const requests = server.since(from)
  t.true(
    requests.some((r) => r.server === 'cdn'),
    'the weights came from the CDN',
  )
  t.true(requests.filter((r) => r.server === 'hub').every((r) => r.authorization === 'Bearer hf_some_token'))
  t.true(
    requests.filter((r) => r.server === 'cdn').every((r) => r.authorization === undefined),
    'no token to the CDN',
  )
})

test.serial(
  'a second load asks the Hub one HEAD for the branch and downloads nothing; by commit it asks nothing',
  async (t) => {
    const server = await hub
    const cacheDir = freshCache()
    await loadsTheFixture(t, TINY, { cacheDir })
    let from = server.requests.length
    await loadsTheFixture(t, TINY, { cacheDir })
    t.deepEqual(
      server.since(from).map((r) => `${r.method} ${r.path}`),
      [`HEAD /${TINY}/resolve/main/config.json`],
    )
    from = server.requests.length
    await loadsTheFixture(t, TINY, { cacheDir, revision: mainCommit })
    t.deepEqual(server.since(from), [])
  },
)

test.serial('offline, from a warm cache: no request at all; from a cold one: ERR_MODEL_NOT_FOUND', async (t) => {
  const server = await hub
  const cacheDir = freshCache()
  await loadsTheFixture(t, TINY, { cacheDir })
  const from = server.requests.length
  await loadsTheFixture(t, TINY, { cacheDir, offline: true })
  t.deepEqual(server.since(from), [])
  await rejects(
    t,
    load(TINY, { cacheDir: freshCache(), offline: true }),
    'ERR_MODEL_NOT_FOUND',
    /not in the cache.*offline/,
  )
})

test.serial('HF_HUB_OFFLINE, HF_HUB_CACHE and HF_ENDPOINT are read from the environment', async (t) => {
  const server = await hub
  const cacheDir = freshCache()
  await loadsTheFixture(t, TINY, { cacheDir })
  const child = join(__dirname, 'children', 'load-from-env.cjs')
  const env = { ...process.env, HF_HUB_CACHE: cacheDir, HF_ENDPOINT: 'http://127.0.0.1:9', HF_HUB_OFFLINE: '1' }
  const from = server.requests.length
  const { stdout } = await promisify(execFile)(process.execPath, ['--import=tsx', child, TINY, PROMPT], { env })
  t.deepEqual(JSON.parse(stdout), (await expected).newIds)
  t.deepEqual(server.since(from), [])
})

test.serial('the environment is read as huggingface_hub reads it; explicit options win', (t) => {
  const home = '/home/someone'
  const env = { HOME: home, XDG_CACHE_HOME: '/xdg', HF_TOKEN_PATH: '/nonexistent/token' }
  t.is(hubSettings({}, env).cacheDir, '/xdg/huggingface/hub')
  t.is(hubSettings({}, { ...env, HF_HOME: '/hf' }).cacheDir, '/hf/hub')
  t.is(hubSettings({}, { ...env, HF_HOME: '/hf', HUGGINGFACE_HUB_CACHE: '/old' }).cacheDir, '/old')
  t.is(hubSettings({}, { ...env, HUGGINGFACE_HUB_CACHE: '/old', HF_HUB_CACHE: '/new' }).cacheDir, '/new')
  t.is(hubSettings({ cacheDir: '/mine' }, { ...env, HF_HUB_CACHE: '/new' }).cacheDir, '/mine')
  t.true(hubSettings({}, { ...env, HF_HUB_OFFLINE: 'yes' }).offline)
  t.true(hubSettings({}, { ...env, TRANSFORMERS_OFFLINE: '1' }).offline)
  t.false(hubSettings({}, { ...env, HF_HUB_OFFLINE: '0', TRANSFORMERS_OFFLINE: '1' }).offline)
  t.false(hubSettings({ offline: false }, { ...env, HF_HUB_OFFLINE: '1' }).offline)
  t.is(hubSettings({}, { ...env, HF_ENDPOINT: 'https://mirror.example/' }).endpoint, 'https://mirror.example')
  t.is(hubSettings({}, env).endpoint, 'https://huggingface.co')
  t.is(hubSettings({}, { ...env, HUGGING_FACE_HUB_TOKEN: 'old', HF_TOKEN: 'new' }).token, 'new')
  t.is(hubSettings({ token: false }, { ...env, HF_TOKEN: 'new' }).token, undefined)
  const tokenFile = join(freshCache(), 'token')
  require('node:fs').writeFileSync(tokenFile, 'hf_from_file\n')
  t.is(hubSettings({}, { ...env, HF_TOKEN_PATH: tokenFile }).token, 'hf_from_file')
  t.is(hubSettings({}, { ...env, HF_HUB_ETAG_TIMEOUT: '2.5', HF_HUB_DOWNLOAD_TIMEOUT: 'x' }).etagTimeoutS, 2.5)
  t.is(hubSettings({}, { ...env, HF_HUB_DOWNLOAD_TIMEOUT: 'x' }).downloadTimeoutS, 10)
})

test.serial(
  'an unreachable or failing Hub falls back to the cache; with nothing cached it is ERR_NETWORK',
  async (t) => {
    const server = await hub
    const cacheDir = freshCache()
    await loadsTheFixture(t, TINY, { cacheDir })
    await loadsTheFixture(t, TINY, { cacheDir, endpoint: 'http://127.0.0.1:9' }) // nothing listens on port 9
    server.failing = true
    try {
      await loadsTheFixture(t, TINY, { cacheDir })
      await rejects(t, load(TINY, { cacheDir: freshCache() }), 'ERR_NETWORK', /answered 500.*HF_HUB_OFFLINE/)
    } finally {
      server.failing = false
    }
    await rejects(
      t,
      load(TINY, { cacheDir: freshCache(), endpoint: 'http://127.0.0.1:9' }),
      'ERR_NETWORK',
      /unreachable.*HF_HUB_OFFLINE/,
    )
  },
)

test.serial(
  "the Hub's error codes: a missing repo, revision or file is ERR_MODEL_NOT_FOUND saying which",
  async (t) => {
    const cacheDir = freshCache()
    await rejects(
      t,
      load('nexttoken-test/nope', { cacheDir }),
      'ERR_MODEL_NOT_FOUND',
      /repository 'nexttoken-test\/nope' was not found/,
    )
    await rejects(t, load(TINY, { cacheDir, revision: 'v9' }), 'ERR_MODEL_NOT_FOUND', /revision 'v9' does not exist/)
    await rejects(t, load('nexttoken-test/no-config', { cacheDir }), 'ERR_MODEL_NOT_FOUND', /has no config.json/)
  },
)

test.serial(
  'a gated repo without the right token is ERR_HUB_AUTH saying how to pass one; with it, it loads',
  async (t) => {
    const server = await hub
    const cacheDir = freshCache()
    await rejects(t, load('nexttoken-test/gated', { cacheDir, token: false }), 'ERR_HUB_AUTH', /gated.*HF_TOKEN/)
    await rejects(t, load('nexttoken-test/gated', { cacheDir, token: 'hf_wrong' }), 'ERR_HUB_AUTH', /token/)
    const from = server.requests.length
    await loadsTheFixture(t, 'nexttoken-test/gated', { cacheDir, token: 'hf_valid_token' })
    t.true(
      server
        .since(from)
        .filter((r) => r.server === 'cdn')
        .every((r) => r.authorization === undefined),
    )
  },
)

test.serial('a revision by branch, tag or commit: every file of a load comes from one commit', async (t) => {
  const cacheDir = freshCache()
  const v1 = repos[TINY].refs.v1
  const byTag = await load(TINY, { cacheDir, revision: 'v1' })
  t.is(byTag.generationConfig.maxNewTokens, 3, "v1's generation_config.json")
  const byCommit = await load(TINY, { cacheDir, revision: v1, offline: true })
  t.is(byCommit.generationConfig.maxNewTokens, 3)
  const main = await load(TINY, { cacheDir })
  t.is(main.generationConfig.maxNewTokens, null)
  t.is(readFileSync(join(storage(cacheDir), 'refs', 'v1'), 'utf8'), v1)
  for (const m of [byTag, byCommit, main]) await m.dispose()
})

test.serial('a renamed repo: the relative redirect is followed', async (t) => {
  const cacheDir = freshCache()
  await loadsTheFixture(t, 'tiny-gpt2', { cacheDir })
  t.true(
    existsSync(join(cacheDir, 'models--tiny-gpt2', 'refs', 'main')),
    'cached under the name asked for, as Python does',
  )
})

test.serial('a connection dropped mid-file is resumed with Range, and the blob is whole', async (t) => {
  const server = await hub
  const cacheDir = freshCache()
  server.dropAfter.set('model.safetensors', 1_000_000)
  const from = server.requests.length
  await loadsTheFixture(t, TINY, { cacheDir })
  const ranges = server.since(from).filter((r) => r.server === 'cdn' && r.range)
  // One resumed request, from what had arrived: at most the 1,000,000 bytes sent before the
  // drop (bytes still in flight when the socket is destroyed are lost, so it can be fewer).
  t.is(ranges.length, 1, JSON.stringify(ranges))
  const resumedAt = Number(/^bytes=(\d+)-$/.exec(ranges[0].range ?? '')?.[1])
  t.true(resumedAt > 0 && resumedAt <= 1_000_000, `resumed at ${resumedAt}`)
})

test.serial('an abort mid-file rejects with AbortError and leaves no partial blob; a later load works', async (t) => {
  const server = await hub
  const cacheDir = freshCache()
  // 200 ms per 64 KiB: the 3.2 MB file would take ~10 s, so an abort that waited for the
  // transfer to end instead of cutting it would show as the file sent whole.
  server.slow.set('model.safetensors', 200)
  server.completed.delete('model.safetensors')
  const controller = new AbortController()
  let events = 0
  const loading = load(TINY, {
    cacheDir,
    signal: controller.signal,
    onProgress: (p) => {
      if (p.file === 'model.safetensors' && p.loaded > 0 && ++events === 1) controller.abort()
    },
  })
  await t.throwsAsync(loading, { instanceOf: AbortError })
  t.false(server.completed.has('model.safetensors'), 'the load rejected before the transfer ended')
  server.slow.delete('model.safetensors')
  const blobs = readdirSync(join(storage(cacheDir), 'blobs'))
  const sha = createHash('sha256')
    .update(readFileSync(join(TINY_MODEL, 'model.safetensors')))
    .digest('hex')
  t.false(blobs.includes(sha), 'no blob under the final name')
  t.false(
    blobs.some((b) => b.includes('incomplete')),
    'no temporary file left',
  )
  t.false(existsSync(join(storage(cacheDir), 'snapshots', mainCommit, 'model.safetensors')))
  await loadsTheFixture(t, TINY, { cacheDir })
})

test.serial('sharded safetensors: the index, then each shard', async (t) => {
  const cacheDir = freshCache()
  await loadsTheFixture(t, 'nexttoken-test/sharded', { cacheDir })
  const snapshot = join(storage(cacheDir, 'nexttoken-test/sharded'), 'snapshots')
  const [commit] = readdirSync(snapshot)
  t.deepEqual(
    readdirSync(join(snapshot, commit))
      .filter((f) => f.startsWith('model'))
      .sort(),
    ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json'],
  )
})

test.serial(
  'pytorch_model.bin, and no generation_config.json: remembered as missing, so offline loads work too',
  async (t) => {
    const cacheDir = freshCache()
    const repoId = 'nexttoken-test/pytorch'
    await loadsTheFixture(t, repoId, { cacheDir })
    const commit = readFileSync(join(storage(cacheDir, repoId), 'refs', 'main'), 'utf8')
    t.true(existsSync(join(storage(cacheDir, repoId), '.no_exist', commit, 'generation_config.json')))
    t.true(existsSync(join(storage(cacheDir, repoId), '.no_exist', commit, 'model.safetensors')))
    await loadsTheFixture(t, repoId, { cacheDir, offline: true })
  },
)

test.serial(
  'a tokenizer from vocab.json + merges.txt; Tokenizer.fromPretrained fetches only tokenizer files',
  async (t) => {
    const server = await hub
    const cacheDir = freshCache()
    await loadsTheFixture(t, 'nexttoken-test/vocab-only', { cacheDir })
    const from = server.requests.length
    const tokenizer = await Tokenizer.fromPretrained(TINY, { endpoint: server.hubUrl, cacheDir: freshCache() })
    t.deepEqual([...tokenizer.encode('Hello world')], [15496, 995])
    const paths = server.since(from).map((r) => r.path)
    t.true(paths.some((p) => p.endsWith('/tokenizer.json')))
    t.false(
      paths.some((p) => p.endsWith('/model.safetensors') || p.endsWith('/config.json')),
      paths.join(),
    )
  },
)

test.serial('progress: per file and overall, ending at the total; nothing when everything is cached', async (t) => {
  const cacheDir = freshCache()
  const events: DownloadProgress[] = []
  await loadsTheFixture(t, TINY, { cacheDir, onProgress: (p) => events.push(p) })
  const files = [...new Set(events.map((e) => e.file))]
  t.true(files.includes('model.safetensors') && files.includes('tokenizer.json'), files.join())
  const last = events[events.length - 1]
  const total = repos[TINY].commits[mainCommit]
  const size = Object.entries(total)
    .filter(([name]) => !['vocab.json', 'merges.txt'].includes(name))
    .reduce((sum, [, content]) => sum + content.length, 0)
  t.deepEqual(last.overall, { loaded: size, total: size })
  for (const file of files) {
    const ofFile = events.filter((e) => e.file === file)
    t.is(ofFile[ofFile.length - 1].loaded, ofFile[0].total, `${file} ends complete`)
  }
  t.true(events.every((e, i) => i === 0 || e.overall.loaded >= events[i - 1].overall.loaded))
  const again: DownloadProgress[] = []
  await loadsTheFixture(t, TINY, { cacheDir, onProgress: (p) => again.push(p) })
  t.deepEqual(again, [])
})

test.serial('forceDownload fetches every file again; concurrent loads of one repo share the cache', async (t) => {
  const server = await hub
  const cacheDir = freshCache()
  await Promise.all([loadsTheFixture(t, TINY, { cacheDir }), loadsTheFixture(t, TINY, { cacheDir })])
  const from = server.requests.length
  await loadsTheFixture(t, TINY, { cacheDir, forceDownload: true })
  const gets = server.since(from).filter((r) => r.method === 'GET')
  t.is(gets.length, 5, gets.map((r) => r.path).join())
  t.false(readdirSync(join(storage(cacheDir), 'blobs')).some((b) => b.includes('incomplete')))
})

test.serial('bad hub options are ERR_INVALID_ARG', async (t) => {
  const bad: [LoadOptions, RegExp][] = [
    [{ revision: '' }, /revision/],
    [{ endpoint: 'not a url' }, /endpoint must be a URL/],
    [{ offline: 'yes' as unknown as boolean }, /offline must be a boolean/],
    [{ onProgress: 3 as unknown as () => void }, /onProgress/],
    [{ token: 5 as unknown as string }, /token/],
  ]
  for (const [options, message] of bad) await rejects(t, load(TINY, options), 'ERR_INVALID_ARG', message)
})
