// The smoke suite for the runtimes other than Node (Bun, Deno; it runs on Node too): what a user
// of one does first, against the committed tiny model and transformers' goldens. Loading from a
// directory, from the Hub cache offline and from a stand-in Hub (which exercises the Hub client's
// node:http transport on the runtime, an error reply with an unread body and a closed connection
// included), logits, top-k, generate, stream, a batch equal to single calls, abort, dispose, the
// tokenizer, and the CLI. Plain ESM with no test runner, so that each runtime runs it as it is:
//   bun __test__/runtimes/smoke.mjs
//   deno run -A __test__/runtimes/smoke.mjs
//   node __test__/runtimes/smoke.mjs
// Prints one line per check, then `<runtime>: N passed, N failed`; exits 1 on a failure.
// Needs the build (`npm run build`): it imports the compiled index.js as a user's code would.
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { AbortError, Gpt2, NexttokenError, Tokenizer } from '../../index.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const TINY = join(ROOT, '__test__', 'fixtures', 'tiny-gpt2')
const GOLDENS = join(ROOT, '__test__', 'fixtures', 'goldens')
const [runtime, version] = globalThis.Deno
  ? ['deno', globalThis.Deno.version.deno]
  : globalThis.Bun
    ? ['bun', globalThis.Bun.version]
    : ['node', process.versions.node]

const checks = []
const check = (name, fn) => checks.push({ name, fn })
function assert(condition, message) {
  if (!condition) throw new Error(message)
}
const same = (a, b, what) =>
  assert(JSON.stringify(a) === JSON.stringify(b), `${what}: ${JSON.stringify(a)} != ${JSON.stringify(b)}`)

const logitsGolden = JSON.parse(readFileSync(join(GOLDENS, 'logits.json'), 'utf8'))
const logitsRows = (() => {
  const bytes = readFileSync(join(GOLDENS, logitsGolden.file))
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength))
})()
const generateGolden = JSON.parse(readFileSync(join(GOLDENS, 'generate.json'), 'utf8')).find(
  (g) => !g.options.doSample && !g.options.numBeams,
)

let model

check('loads the tiny model from a directory', async () => {
  model = await Gpt2.fromPretrained(TINY)
  assert(model.config.nLayer === 2 && model.config.vocabSize === 50257, JSON.stringify(model.config))
})

check("logits within 1e-4 of transformers' at every golden position", async () => {
  const vocab = logitsGolden.vocabSize
  for (const c of logitsGolden.cases) {
    const all = await model.logits(c.ids, { positions: 'all' })
    c.positions.forEach((position, i) => {
      const row = logitsRows.subarray((c.row + i) * vocab, (c.row + i + 1) * vocab)
      let worst = 0
      for (let j = 0; j < vocab; j++) worst = Math.max(worst, Math.abs(all[position * vocab + j] - row[j]))
      assert(worst <= 1e-4, `${c.name} position ${position}: max |diff| ${worst}`)
    })
  }
})

check("topK is transformers' top-5", async () => {
  for (const c of logitsGolden.cases.filter((c) => c.text)) {
    const top = await model.topK(c.text, 5)
    same(
      top.map((t) => t.id),
      c.top5.map((t) => t.id),
      c.name,
    )
    for (const [i, t] of top.entries()) {
      assert(Math.abs(t.p - c.top5[i].p) <= 1e-5, `${c.name}: p ${t.p} vs ${c.top5[i].p}`)
    }
  }
})

check("greedy generate is transformers'", async () => {
  const result = await model.generate(generateGolden.text, generateGolden.options)
  same(result.ids, generateGolden.ids, generateGolden.name)
})

check('stream yields what generate returns', async () => {
  const options = { maxNewTokens: 12, eosTokenId: null }
  const ids = []
  for await (const step of model.stream('The meaning of life is', options)) ids.push(step.id)
  same(ids, (await model.generate('The meaning of life is', options)).newIds, 'stream vs generate')
})

check('a batch equals single calls', async () => {
  const prompts = ['Hello there', 'Once upon a time, generative models', 'A']
  const options = { maxNewTokens: 8, eosTokenId: null }
  const batch = await model.generateBatch(prompts, options)
  for (const [i, prompt] of prompts.entries()) {
    same(batch[i].newIds, (await model.generate(prompt, options)).newIds, prompt)
  }
})

check(
  'abort: a running generate rejects with AbortError and its partial result; an aborted signal at once',
  async () => {
    const controller = new AbortController()
    let seen = 0
    const running = model.generate('Once upon a time', {
      maxNewTokens: 500,
      eosTokenId: null,
      signal: controller.signal,
      onToken: () => {
        if (++seen === 3) controller.abort()
      },
    })
    const err = await running.then(
      () => undefined,
      (e) => e,
    )
    assert(err instanceof AbortError && err.code === 'ABORT_ERR', `got ${err}`)
    assert(err.partial?.stopReason === 'abort' && err.partial.newIds.length >= 3, JSON.stringify(err.partial))
    const early = await model.generate('Hello', { signal: AbortSignal.abort() }).then(
      () => undefined,
      (e) => e,
    )
    assert(early instanceof AbortError, `got ${early}`)
  },
)

check('the tokenizer encodes and decodes (synchronous native calls)', async () => {
  const tokenizer = await Tokenizer.fromPretrained(TINY)
  const ids = tokenizer.encode('Hello world, café ✓')
  assert(tokenizer.decode(ids) === 'Hello world, café ✓', tokenizer.decode(ids))
  same(Array.from(model.tokenizer.encode('Hello')), [15496], 'Hello')
})

const FILES = ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']
const COMMIT = 'c0ffee0000000000000000000000000000000003'
const sha256 = (data) => createHash('sha256').update(data).digest('hex')
const gitSha1 = (data) => createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex')
const content = Object.fromEntries(FILES.map((f) => [f, readFileSync(join(TINY, f))]))
const expected = () => model.generate('The meaning of life is', { maxNewTokens: 5 })

check('loads from the Hugging Face cache offline, as Python laid it out', async () => {
  const cacheDir = mkdtempSync(join(tmpdir(), 'nexttoken-smoke-cache-'))
  const storage = join(cacheDir, 'models--smoke--tiny')
  mkdirSync(join(storage, 'blobs'), { recursive: true })
  mkdirSync(join(storage, 'refs'))
  mkdirSync(join(storage, 'snapshots', COMMIT), { recursive: true })
  writeFileSync(join(storage, 'refs', 'main'), COMMIT)
  for (const file of FILES) {
    const blob = file.endsWith('.safetensors') ? sha256(content[file]) : gitSha1(content[file])
    writeFileSync(join(storage, 'blobs', blob), content[file])
    symlinkSync(join('..', '..', 'blobs', blob), join(storage, 'snapshots', COMMIT, file))
  }
  const cached = await Gpt2.fromPretrained('smoke/tiny', { cacheDir, offline: true })
  same((await cached.generate('The meaning of life is', { maxNewTokens: 5 })).newIds, (await expected()).newIds, 'ids')
  await cached.dispose()
})

/** A stand-in Hub on node:http: every file of the fixture; `smoke/broken` answers its weights' GET
 * with a 500 and a 100 kB page, then closes the connection. */
function standInHub() {
  const server = createServer((req, res) => {
    const match = /^\/(smoke\/[\w-]+)\/resolve\/[^/]+\/(.+)$/.exec(decodeURIComponent(req.url.split('?')[0]))
    const file = match?.[2]
    const body = file && content[file]
    if (!body) {
      res.writeHead(404, { 'x-error-code': 'EntryNotFound', 'x-repo-commit': COMMIT, 'content-length': '0' })
      return res.end()
    }
    const lfs = file.endsWith('.safetensors')
    if (match[1] === 'smoke/broken' && lfs && req.method === 'GET') {
      const page = Buffer.alloc(100_000, '<p>overloaded</p>')
      res.writeHead(500, { 'content-length': String(page.length), connection: 'close' })
      return res.end(page)
    }
    res.writeHead(200, {
      'x-repo-commit': COMMIT,
      'content-length': String(body.length),
      etag: `"${lfs ? 'pointer' : gitSha1(body)}"`,
      ...(lfs ? { 'x-linked-etag': `"${sha256(body)}"`, 'x-linked-size': String(body.length) } : {}),
    })
    res.end(req.method === 'HEAD' ? undefined : body)
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}

check(
  'downloads from a stand-in Hub; an error reply with an unread body and a closed connection is ERR_NETWORK',
  async () => {
    const server = await standInHub()
    try {
      const endpoint = `http://127.0.0.1:${server.address().port}`
      const cacheDir = mkdtempSync(join(tmpdir(), 'nexttoken-smoke-hub-'))
      const loaded = await Gpt2.fromPretrained('smoke/tiny', { endpoint, cacheDir })
      same(
        (await loaded.generate('The meaning of life is', { maxNewTokens: 5 })).newIds,
        (await expected()).newIds,
        'ids',
      )
      await loaded.dispose()
      const err = await Gpt2.fromPretrained('smoke/broken', { endpoint, cacheDir }).then(
        () => undefined,
        (e) => e,
      )
      assert(err instanceof NexttokenError && err.code === 'ERR_NETWORK' && /HTTP 500/.test(err.message), `got ${err}`)
      await new Promise((resolve) => setTimeout(resolve, 200)) // the FIN after the unread page arrives
    } finally {
      server.closeAllConnections?.()
      server.close()
    }
  },
)

check('dispose: later calls are ERR_DISPOSED', async () => {
  await model.dispose()
  const err = await model.topK('Hello').then(
    () => undefined,
    (e) => e,
  )
  assert(err instanceof NexttokenError && err.code === 'ERR_DISPOSED', `got ${err}`)
})

check('the CLI: `next` on the tiny model', async () => {
  const cli = join(ROOT, 'cli.js')
  const args = globalThis.Deno ? ['run', '-A', cli] : [cli]
  const run = spawnSync(process.execPath, [...args, 'next', '--model', TINY, 'Hello'], { encoding: 'utf8' })
  assert(run.status === 0, `exit ${run.status}: ${run.stderr}`)
  assert(/next: 17707 /.test(run.stdout), run.stdout)
})

console.log(`nexttoken smoke suite on ${runtime} ${version}`)
let passed = 0
let failed = 0
for (const { name, fn } of checks) {
  const started = Date.now()
  try {
    await fn()
    passed++
    console.log(`  ✔ ${name} (${Date.now() - started} ms)`)
  } catch (err) {
    failed++
    console.log(`  ✘ ${name}\n    ${String(err?.stack ?? err).replaceAll('\n', '\n    ')}`)
  }
}
console.log(`${runtime}: ${passed} passed, ${failed} failed`)
process.exit(failed === 0 ? 0 : 1)
