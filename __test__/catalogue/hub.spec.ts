// The catalogue of bad Hub answers: a raw HTTP server on 127.0.0.1 that serves the tiny fixture
// as a Hub repo, with one fault per repo name (headers missing or malformed, bodies shorter or
// longer than announced, a wrong sha256, every kind of 4xx / 5xx, redirect loops, a redirect to a
// host that is down, invalid JSON, stalls). Each load rejects with a coded NexttokenError, and the
// cache holds no partial or corrupt blob afterwards. A raw socket server (not node:http) so that a
// response can lie about its length or stop half-way.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs'
import { createServer, type Server, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import test from 'ava'

import { type ErrorCode, Gpt2, NexttokenError } from '../../index'
import { FILES, gitSha1, normalReply as rawNormalReply, sha256 } from '../helpers/raw-hub'

// Timeouts of 2 s instead of 10, so that stalls fail fast, yet not so short that a transfer on a
// busy machine is taken for a stall (0.5 s was). Read by lib/hub/settings.ts at each load; this
// file runs in a process of its own.
process.env.HF_HUB_ETAG_TIMEOUT = '2'
process.env.HF_HUB_DOWNLOAD_TIMEOUT = '2'

/** One response, as the socket will send it. */
interface Reply {
  status: number
  headers: Record<string, string>
  /** Sent after the headers on a GET (whatever content-length says). */
  body: Buffer
  /** Stop after this many body bytes, leaving the connection open (a stall) or closing it. */
  cut?: { after: number; close: boolean }
  /** Send nothing at all. */
  silent?: boolean
}

/** Changes the normal reply to `method` of `file`: the fault under test. */
type Fault = (method: string, file: string, reply: Reply, url: string) => Reply

/** The Hub's normal answer for `file` of the repo (the raw stand-in Hub's, whose bodies here are all buffers). */
function normalReply(file: string, method: string): Reply {
  const { status, headers, body } = rawNormalReply(file, method)
  return { status, headers, body: body as Buffer }
}

const FAULTS = new Map<string, Fault>()
const sockets = new Set<Socket>()

function answer(socket: Socket, head: string, base: string) {
  const [method, url] = head.split(' ')
  const match = /^\/(.+?\/.+?)\/resolve\/([^/]+)\/(.+)$/.exec(decodeURIComponent(url.split('?')[0]))
  if (!match) return socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n')
  const [, repo, , file] = match
  const fault = FAULTS.get(repo) ?? ((_m, _f, reply) => reply)
  const reply = fault(method, file, normalReply(file, method), `${base}${url}`)
  if (reply.silent) return
  const lines = Object.entries({ connection: 'close', ...reply.headers }).map(([k, v]) => `${k}: ${v}`)
  socket.write(`HTTP/1.1 ${reply.status} Status\r\n${lines.join('\r\n')}\r\n\r\n`)
  const body = method === 'HEAD' ? Buffer.alloc(0) : reply.body
  if (reply.cut) {
    socket.write(body.subarray(0, reply.cut.after))
    if (reply.cut.close) socket.end()
    return
  }
  socket.end(body)
}

function listen(): Promise<{ server: Server; url: string }> {
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    let received = ''
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1')
      const end = received.indexOf('\r\n\r\n')
      if (end >= 0 && !received.startsWith('done')) {
        const head = received.slice(0, end)
        received = 'done'
        answer(socket, head, url)
      }
    })
  })
  let url = ''
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      resolve({ server, url })
    }),
  )
}

const hub = listen()
/** An address where nothing listens: a closed server's port. */
const downHost = listen().then(async ({ server, url }) => {
  await new Promise((resolve) => server.close(resolve))
  return url
})
test.after.always(async () => {
  for (const socket of sockets) socket.destroy()
  ;(await hub).server.close()
})

/** Every blob in the cache is whole (named by its content's hash) and no partial download is left. */
function assertCacheClean(t: { true: (v: boolean, m?: string) => void }, cacheDir: string) {
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
    )
  if (!existsSync(cacheDir)) return
  for (const path of walk(cacheDir)) {
    t.true(!path.endsWith('.incomplete'), `a partial download is left: ${path}`)
    const parts = path.split(/[\\/]/)
    if (parts.at(-2) !== 'blobs') continue
    const content = readFileSync(path)
    const name = parts.at(-1)!
    t.true(name === sha256(content) || name === gitSha1(content), `blob ${name} does not hold what its name says`)
  }
}

type Case = [name: string, fault: Fault, code: ErrorCode, message: RegExp]

const on =
  (file: string, methods: string[], change: (reply: Reply, url: string) => Reply): Fault =>
  (method, f, reply, url) =>
    f === file && methods.includes(method) ? change(reply, url) : reply

const without = (headers: Record<string, string>, ...names: string[]) =>
  Object.fromEntries(Object.entries(headers).filter(([k]) => !names.includes(k)))

const status = (code: number, errorCode?: string) => (): Reply => ({
  status: code,
  headers: { 'content-length': '0', ...(errorCode ? { 'x-error-code': errorCode } : {}) },
  body: Buffer.alloc(0),
})

const BOTH = ['HEAD', 'GET']
/** The address of the host that is down, once known. */
let DOWN = ''
const CONFIG = FILES['config.json']
const WEIGHTS = FILES['model.safetensors']

const CASES: Case[] = [
  // Headers.
  [
    'a file without an ETag',
    on('config.json', ['HEAD'], (r) => ({ ...r, headers: without(r.headers, 'etag') })),
    'ERR_NETWORK',
    /without an ETag/,
  ],
  [
    'a file without X-Repo-Commit',
    on('config.json', ['HEAD'], (r) => ({ ...r, headers: without(r.headers, 'x-repo-commit') })),
    'ERR_NETWORK',
    /without an X-Repo-Commit header/,
  ],
  [
    'an ETag that is a path',
    on('config.json', ['HEAD'], (r) => ({ ...r, headers: { ...r.headers, etag: '"../../../escaped"' } })),
    'ERR_NETWORK',
    /ETag/,
  ],
  [
    'an X-Linked-Etag that is a path',
    on('model.safetensors', ['HEAD'], (r) => ({ ...r, headers: { ...r.headers, 'x-linked-etag': '"../../escaped"' } })),
    'ERR_NETWORK',
    /ETag/,
  ],
  [
    'an X-Repo-Commit that is a path',
    on('config.json', ['HEAD'], (r) => ({ ...r, headers: { ...r.headers, 'x-repo-commit': '../../../escaped' } })),
    'ERR_NETWORK',
    /X-Repo-Commit/,
  ],
  // Bodies that do not match what was announced.
  [
    'a body shorter than its Content-Length, every time',
    on('config.json', ['GET'], (r) => ({ ...r, cut: { after: 100, close: true } })),
    'ERR_NETWORK',
    /config\.json/,
  ],
  [
    'an LFS body shorter than X-Linked-Size',
    on('model.safetensors', ['GET'], (r) => ({
      ...r,
      headers: { ...r.headers, 'content-length': '1000' },
      body: r.body.subarray(0, 1000),
    })),
    'ERR_NETWORK',
    /model\.safetensors cannot be resumed/,
  ],
  [
    'an LFS body longer than X-Linked-Size',
    on('model.safetensors', ['HEAD'], (r) => ({ ...r, headers: { ...r.headers, 'x-linked-size': '1000' } })),
    'ERR_NETWORK',
    /sent more than the 1000 bytes declared for it/,
  ],
  [
    'an LFS file whose sha256 is not its X-Linked-Etag',
    on('model.safetensors', ['HEAD'], (r) => ({
      ...r,
      headers: { ...r.headers, 'x-linked-etag': `"${sha256(Buffer.from('other'))}"` },
    })),
    'ERR_NETWORK',
    /sha256/,
  ],
  // Status codes, on the HEAD and on the GET after a good HEAD.
  ['HEAD 400', on('config.json', ['HEAD'], status(400)), 'ERR_NETWORK', /answered 400/],
  ['HEAD 401', on('config.json', ['HEAD'], status(401)), 'ERR_HUB_AUTH', /HTTP 401/],
  ['HEAD 403', on('config.json', ['HEAD'], status(403)), 'ERR_HUB_AUTH', /HTTP 403/],
  ['HEAD 404', on('config.json', ['HEAD'], status(404)), 'ERR_MODEL_NOT_FOUND', /was not found/],
  [
    'HEAD 404 RepoNotFound',
    on('config.json', ['HEAD'], status(404, 'RepoNotFound')),
    'ERR_MODEL_NOT_FOUND',
    /not found/,
  ],
  ['HEAD 410', on('config.json', ['HEAD'], status(410)), 'ERR_NETWORK', /answered 410/],
  ['HEAD 429', on('config.json', ['HEAD'], status(429)), 'ERR_NETWORK', /answered 429/],
  ['HEAD 500', on('config.json', ['HEAD'], status(500)), 'ERR_NETWORK', /answered 500/],
  ['HEAD 502', on('tokenizer.json', ['HEAD'], status(502)), 'ERR_NETWORK', /answered 502/],
  ['HEAD 503', on('model.safetensors', ['HEAD'], status(503)), 'ERR_NETWORK', /answered 503/],
  ['GET 401', on('model.safetensors', ['GET'], status(401)), 'ERR_HUB_AUTH', /HTTP 401/],
  ['GET 403', on('config.json', ['GET'], status(403)), 'ERR_HUB_AUTH', /HTTP 403/],
  ['GET 404', on('config.json', ['GET'], status(404)), 'ERR_NETWORK', /HTTP 404/],
  ['GET 500', on('model.safetensors', ['GET'], status(500)), 'ERR_NETWORK', /HTTP 500/],
  ['GET 503', on('tokenizer.json', ['GET'], status(503)), 'ERR_NETWORK', /HTTP 503/],
  // Redirects.
  [
    'a redirect loop on the HEAD',
    on('config.json', ['HEAD'], (_r, url) => ({
      status: 307,
      headers: { location: url, 'content-length': '0' },
      body: Buffer.alloc(0),
    })),
    'ERR_NETWORK',
    /too many redirects/,
  ],
  [
    'a redirect loop on the GET',
    on('config.json', ['GET'], (_r, url) => ({
      status: 302,
      headers: { location: url, 'content-length': '0' },
      body: Buffer.alloc(0),
    })),
    'ERR_NETWORK',
    /config\.json/,
  ],
  [
    'a redirect to a host that is down',
    // The Hub sends LFS files to a CDN on another host: here one where nothing listens.
    (_method, file, reply) =>
      file === 'model.safetensors'
        ? { ...reply, status: 302, headers: { ...reply.headers, location: `${DOWN}/blob` }, body: Buffer.alloc(0) }
        : reply,
    'ERR_NETWORK',
    /model\.safetensors/,
  ],
  // Stalls.
  [
    'a HEAD that is never answered',
    on('config.json', ['HEAD'], (r) => ({ ...r, silent: true })),
    'ERR_NETWORK',
    /unreachable/,
  ],
  [
    'a GET that stops half-way and stalls',
    on('model.safetensors', ['GET'], (r) => ({ ...r, cut: { after: 100_000, close: false } })),
    'ERR_NETWORK',
    /model\.safetensors/,
  ],
  // What the files say.
  [
    'an invalid config.json',
    (method, file, reply) =>
      file === 'config.json' ? withBody(reply, method, Buffer.from('{"model_type": "gpt2",')) : reply,
    'ERR_MODEL_INVALID',
    /config\.json/,
  ],
  [
    'an invalid model.safetensors.index.json',
    (method, file, reply) =>
      file === 'model.safetensors'
        ? normalReply('missing', method)
        : file === 'model.safetensors.index.json'
          ? withBody(normalReply('config.json', method), method, Buffer.from('{"weight_map": '))
          : reply,
    'ERR_MODEL_INVALID',
    /model\.safetensors\.index\.json/,
  ],
]

/** `reply` serving `content` instead (headers to match). */
function withBody(reply: Reply, method: string, content: Buffer): Reply {
  return {
    ...reply,
    headers: { ...reply.headers, 'content-length': String(content.length), etag: `"${gitSha1(content)}"` },
    body: method === 'HEAD' ? Buffer.alloc(0) : content,
  }
}

for (const [i, [name, fault, code, message]] of CASES.entries()) {
  test(`fromPretrained from a Hub with ${name}`, async (t) => {
    const { url } = await hub
    DOWN = await downHost
    const repo = `faulty/case-${i}`
    FAULTS.set(repo, fault)
    const root = mkdtempSync(join(tmpdir(), 'nexttoken-hubfault-'))
    const cacheDir = join(root, 'a', 'b', 'cache')
    mkdirSync(join(root, 'a', 'b'), { recursive: true })
    const err = await t.throwsAsync(Gpt2.fromPretrained(repo, { endpoint: url, cacheDir }), {
      instanceOf: NexttokenError,
    })
    t.is(err?.code, code, err?.message)
    t.regex(err?.message ?? '', message)
    assertCacheClean(t, cacheDir)
    // Nothing written beside the cache or beside the repo's folder in it (where a path in a
    // header would lead).
    t.deepEqual(readdirSync(join(root, 'a', 'b')), existsSync(cacheDir) ? ['cache'] : [])
    if (existsSync(cacheDir)) {
      for (const entry of readdirSync(cacheDir)) t.regex(entry, /^(models--faulty--case-\d+|CACHEDIR\.TAG)$/)
    }
  })
}

test('a body followed by bytes past its Content-Length: they are not the file, which loads', async (t) => {
  const { url } = await hub
  FAULTS.set(
    'faulty/trailing',
    on('config.json', BOTH, (r) => ({ ...r, body: Buffer.concat([r.body, Buffer.from('garbage')]) })),
  )
  const cacheDir = mkdtempSync(join(tmpdir(), 'nexttoken-hubfault-'))
  const model = await Gpt2.fromPretrained('faulty/trailing', { endpoint: url, cacheDir })
  t.is(model.config.nEmbd, JSON.parse(CONFIG.toString()).n_embd)
  await model.dispose()
  assertCacheClean(t, cacheDir)
})

test('the healthy repo of this server loads (the faults above are the only difference)', async (t) => {
  const { url } = await hub
  const cacheDir = mkdtempSync(join(tmpdir(), 'nexttoken-hubfault-'))
  const model = await Gpt2.fromPretrained('healthy/repo', { endpoint: url, cacheDir })
  t.true((await model.nextToken('Hello')).id >= 0)
  await model.dispose()
  assertCacheClean(t, cacheDir)
  t.true(readdirSync(join(cacheDir, 'models--healthy--repo', 'blobs')).includes(sha256(WEIGHTS)))
})
