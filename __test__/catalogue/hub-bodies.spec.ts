// No Hub answer can end the process: error replies whose bodies are larger than the stream
// buffers, then a closed connection (what made the fetch of Node 22 and 24 die with an
// uncatchable `AssertionError` in undici's `Parser.finish`: undici issue 5360), redirects and
// ignored ranges with bodies, bodies past the declared size, and a healthy download read more
// slowly than it arrives, then closed (which crashed that fetch too). The loads run in a child
// process (__test__/children/hub-bodies.cjs): it must print every outcome and exit by itself,
// neither killed nor held open by a connection.
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import test from 'ava'

import { CHILDREN, expectCleanExit, runNode } from '../helpers/children'
import { FILES, RawHub, type RawFault, type RawReply, type RawRequest } from '../helpers/raw-hub'

const WEIGHTS = FILES['model.safetensors']

/** `size` bytes of an error page. */
const page = (size: number) => Buffer.alloc(size, '<p>overloaded</p>')

/** Answers `method` of `file` with `change(reply)`. */
const on =
  (file: string, method: string, change: (reply: RawReply, request: RawRequest) => RawReply): RawFault =>
  (request, reply) =>
    request.file === file && request.method === method ? change(reply, request) : reply

const errorPage =
  (status: number, size: number, extra: Partial<RawReply> = {}) =>
  (): RawReply => ({
    status,
    headers: { 'content-type': 'text/html', 'content-length': String(size) },
    body: page(size),
    ...extra,
  })

/** The first GET of `file` gets `first`; the others, the normal answer. */
function once(file: string, first: (reply: RawReply, request: RawRequest) => RawReply): RawFault {
  let done = false
  return (request, reply) => {
    if (request.file !== file || request.method !== 'GET' || done) return reply
    done = true
    return first(reply, request)
  }
}

/** Repos whose first GET was cut already. */
const cut = new Set<string>()

type Outcome = { ok: true } | { code: string; message: RegExp }

const CASES: [repo: string, fault: RawFault, outcome: Outcome][] = [
  // Larger than the response stream's buffer (16 KiB) yet in one read of the socket: the reader
  // stops, and the FIN comes after the last byte.
  [
    'bodies/get-500-100k',
    on('model.safetensors', 'GET', errorPage(500, 100_000)),
    { code: 'ERR_NETWORK', message: /HTTP 500/ },
  ],
  [
    'bodies/get-502-120k',
    on('model.safetensors', 'GET', errorPage(502, 120_000)),
    { code: 'ERR_NETWORK', message: /HTTP 502/ },
  ],
  [
    'bodies/get-503-1m',
    on('model.safetensors', 'GET', errorPage(503, 1 << 20)),
    { code: 'ERR_NETWORK', message: /HTTP 503/ },
  ],
  [
    'bodies/get-500-no-length',
    on('model.safetensors', 'GET', () => ({ status: 500, headers: {}, body: page(100_000) })),
    { code: 'ERR_NETWORK', message: /HTTP 500/ },
  ],
  [
    'bodies/get-404-config',
    on('config.json', 'GET', errorPage(404, 100_000)),
    { code: 'ERR_NETWORK', message: /HTTP 404/ },
  ],
  // The connection stays open: the process must still exit.
  [
    'bodies/get-403-kept-alive',
    on('model.safetensors', 'GET', errorPage(403, 40_000, { keepAlive: true })),
    { code: 'ERR_HUB_AUTH', message: /HTTP 403/ },
  ],
  [
    'bodies/redirect-with-body',
    once('model.safetensors', (_reply, request) => ({
      status: 302,
      headers: {
        location: `/${request.repo}/resolve/${request.revision}/model.safetensors?again=1`,
        'content-length': '40000',
      },
      body: page(40_000),
    })),
    { ok: true },
  ],
  [
    // Cut after 100 kB; the resumed GET's range is ignored: a hashed download cannot start over.
    'bodies/ignored-range',
    (request, reply) => {
      if (request.file !== 'model.safetensors' || request.method !== 'GET') return reply
      if (cut.has(request.repo)) return reply // 200 and the whole file again
      cut.add(request.repo)
      return { ...reply, body: (socket) => socket.end(WEIGHTS.subarray(0, 100_000)) }
    },
    { code: 'ERR_NETWORK', message: /cannot be resumed/ },
  ],
  [
    'bodies/more-than-declared',
    on('model.safetensors', 'HEAD', (reply) => ({ ...reply, headers: { ...reply.headers, 'x-linked-size': '1000' } })),
    { code: 'ERR_NETWORK', message: /more than the 1000 bytes declared/ },
  ],
  ['slow/healthy', (_request, reply) => reply, { ok: true }],
  ['slow/kept-alive', (_request, reply) => ({ ...reply, keepAlive: true }), { ok: true }],
]

test('no answer of the Hub ends the process: unread bodies, closed connections, slow readers', async (t) => {
  t.timeout(180_000)
  const hub = await new RawHub().start()
  t.teardown(() => hub.stop())
  for (const [repo, fault] of CASES) hub.faults.set(repo, fault)
  const cacheRoot = mkdtempSync(join(tmpdir(), 'nexttoken-hub-bodies-'))
  const repos = CASES.map(([repo]) => repo)
  const child = await runNode([join(CHILDREN, 'hub-bodies.cjs'), hub.url, cacheRoot, ...repos], 150_000)
  expectCleanExit(t, child)
  const results = JSON.parse(child.stdout || '[]') as { repo: string; ok: boolean; code?: string; message?: string }[]
  t.deepEqual(
    results.map((r) => r.repo),
    repos,
  )
  for (const [i, [repo, , outcome]] of CASES.entries()) {
    const result = results[i]
    if (!result) continue
    if ('ok' in outcome) {
      t.true(result.ok, `${repo}: ${result.code} ${result.message}`)
    } else {
      t.is(result.code, outcome.code, `${repo}: ${result.message}`)
      t.regex(result.message ?? '', outcome.message, repo)
    }
  }
})
