// The `nexttoken` command: each subcommand spawned with piped stdio on the tiny fixture, `step`
// and the download progress bar in a real terminal (tmux), downloads from the stand-in Hub.
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import test from 'ava'

import { Gpt2 } from '../index'
import { canDrawBar } from '../lib/cli/format'
import { TINY_MODEL } from './helpers/fixtures'
import { hubRepos, TINY } from './helpers/hub-repos'
import { HubServer } from './helpers/hub-server'
import { Terminal } from './helpers/terminal'

const CLI = join(__dirname, '..', 'cli.js')
const TEXT = "I am learning about generative ai and LLM's"
const model = Gpt2.fromPretrained(TINY_MODEL)
const hub = new HubServer(hubRepos()).start()
test.after.always(async () => (await hub).stop())

interface Run {
  code: number
  stdout: string
  stderr: string
}

/** Runs the command with piped stdio (so not a terminal) and `input` on stdin. */
function cli(args: string[], options: { env?: Record<string, string>; input?: string } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, ...options.env } },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code) : 0, stdout, stderr }),
    )
    child.stdin?.end(options.input ?? '')
  })
}

const hubEnv = async (cacheDir: string) => ({ HF_ENDPOINT: (await hub).hubUrl, HF_HUB_CACHE: cacheDir })
const freshCache = () => mkdtempSync(join(tmpdir(), 'nexttoken-cli-'))

test('--dtype holds the weights in that type: next --dtype q8 gives the q8 model’s top tokens', async (t) => {
  const run = await cli(['next', '--model', TINY_MODEL, '--dtype', 'q8', '--json', TEXT])
  t.is(run.code, 0, run.stderr)
  const model = await Gpt2.fromPretrained(TINY_MODEL, { dtype: 'q8' })
  const expected = await model.topK(TEXT, 5)
  t.deepEqual(
    JSON.parse(run.stdout).top.map((c: { id: number }) => c.id),
    expected.map((c) => c.id),
  )
  await model.dispose()
})

test('--packed-cache writes the packed weights once; the next run maps them and prints the same', async (t) => {
  const cacheDir = freshCache()
  const args = ['next', '--model', TINY_MODEL, '--dtype', 'q4', '--packed-cache', cacheDir, '--json', TEXT]
  const first = await cli(args)
  t.is(first.code, 0, first.stderr)
  t.is(readdirSync(cacheDir).filter((name) => name.endsWith('.packed')).length, 1)
  const second = await cli(args)
  t.is(second.code, 0, second.stderr)
  t.deepEqual(JSON.parse(second.stdout), JSON.parse(first.stdout))
})

test('next prints the top-k table and the greedy token; --json gives the same numbers', async (t) => {
  const m = await model
  const top = await m.topK(TEXT, 5)
  const run = await cli(['next', '--model', TINY_MODEL, TEXT])
  t.is(run.code, 0, run.stderr)
  const lines = run.stdout.trim().split('\n')
  t.regex(lines[0], /^\s*id\s+token\s+p$/)
  top.forEach((c, i) => {
    t.regex(
      lines[i + 1],
      new RegExp(
        `^\\s*${c.id}\\s+${JSON.stringify(c.token).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s+${c.p.toFixed(4)}$`,
      ),
    )
  })
  t.is(lines[lines.length - 1], `next: ${top[0].id} ${JSON.stringify(top[0].token)} (p = ${top[0].p.toFixed(4)})`)
  const json = JSON.parse((await cli(['next', '--model', TINY_MODEL, '--json', '--top', '3', TEXT])).stdout)
  t.deepEqual(json.ids, [...m.tokenizer.encode(TEXT)])
  t.deepEqual(json.top, top.slice(0, 3))
  t.deepEqual(json.next, top[0])
})

test('generate streams the completion; options as in generate(); --json gives the result', async (t) => {
  const m = await model
  const expected = await m.generate(TEXT, { maxNewTokens: 12, repetitionPenalty: 1.3 })
  const run = await cli(['generate', '-m', TINY_MODEL, '--max-new-tokens', '12', '--repetition-penalty', '1.3', TEXT])
  t.is(run.code, 0, run.stderr)
  t.is(run.stdout, `${expected.completion}\n`)
  const sampled = await m.generate(TEXT, { maxNewTokens: 6, doSample: true, seed: 7, topK: 20 })
  const json = JSON.parse(
    (
      await cli([
        'generate',
        '-m',
        TINY_MODEL,
        '--json',
        '--max-new-tokens',
        '6',
        '--sample',
        '--seed',
        '7',
        '--top-k',
        '20',
        TEXT,
      ])
    ).stdout,
  )
  t.deepEqual(json.newIds, sampled.newIds)
  t.is(json.stopReason, 'length')
})

test('exit codes: 2 for bad usage (with the usage), 1 for a coded library error, 0 for help', async (t) => {
  const usage = [
    [],
    ['nope'],
    ['next', '-m', TINY_MODEL],
    ['next', '-m', TINY_MODEL, 'a', 'b'],
    ['next', '--frobnicate', 'x'],
    ['generate', '-m', TINY_MODEL, '--max-new-tokens', 'many', 'x'],
    ['next', '-m', TINY_MODEL, '--top', '0', 'x'],
    ['cache', 'rm'],
  ]
  for (const args of usage) {
    const run = await cli(args)
    t.is(run.code, 2, `${args.join(' ')}: ${run.stderr}`)
  }
  t.regex((await cli(['next', '--frobnicate', 'x'])).stderr, /usage: nexttoken next/)
  const library = await cli(['generate', '-m', TINY_MODEL, '--sample', '--temperature', '0', 'x'])
  t.is(library.code, 1)
  t.regex(library.stderr, /^ERR_INVALID_ARG: temperature must be a positive number/)
  const dtype = await cli(['next', '-m', TINY_MODEL, '--dtype', 'q3', 'x'])
  t.is(dtype.code, 1)
  t.regex(dtype.stderr, /^ERR_INVALID_ARG: unknown dtype 'q3'/)
  const missing = await cli(['next', '-m', '/no/such/model', 'x'])
  t.is(missing.code, 1)
  t.regex(missing.stderr, /^ERR_MODEL_NOT_FOUND: /)
  for (const args of [
    ['--help'],
    ['next', '--help'],
    ['step', '-h'],
    ['generate', '--help'],
    ['download', '--help'],
    ['cache', '--help'],
  ]) {
    const run = await cli(args)
    t.is(run.code, 0, args.join(' '))
    t.regex(run.stdout, /nexttoken/)
  }
})

test('step without a terminal reads one command per line: empty = the most likely, a digit = that row', async (t) => {
  const m = await model
  const ids = [...m.tokenizer.encode('Hello')]
  for (const row of [0, 1, 0]) ids.push((await m.topK(ids, 3))[row].id)
  const run = await cli(['step', '-m', TINY_MODEL, '--top', '3', 'Hello'], { input: '\n2\n\nq\nignored after q\n' })
  t.is(run.code, 0, run.stderr)
  const screens = run.stdout.split('Enter: append')
  t.is(screens.length, 5, 'the first screen and one per appended token')
  t.true(screens[3].includes(`${m.tokenizer.decode(ids)}\n`), screens[3])
  t.false(run.stdout.includes('\x1b['), 'no terminal escapes in a pipe')
})

test('step in a real terminal: Enter three times appends the three most likely tokens', async (t) => {
  const m = await model
  const expected = await m.generate('Hello', { maxNewTokens: 3 })
  const terminal = await Terminal.start([process.execPath, CLI, 'step', '-m', TINY_MODEL, 'Hello'])
  try {
    await terminal.waitFor(/q: quit/)
    for (let i = 1; i <= 3; i++) {
      await terminal.keys('Enter')
      const text = m.tokenizer.decode([...m.tokenizer.encode('Hello'), ...expected.newIds.slice(0, i)])
      await terminal.waitFor(new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'))
    }
    const screen = await terminal.screen()
    t.true(screen.split('\n').includes(expected.text), screen)
    await terminal.keys('q')
    await terminal.waitFor(/\[exit 0\]/)
  } finally {
    await terminal.close()
  }
})

test('download fills the cache: plain lines without a terminal; cache ls lists it; --model finds it', async (t) => {
  const cacheDir = freshCache()
  const env = await hubEnv(cacheDir)
  const run = await cli(['download', TINY], { env })
  t.is(run.code, 0, run.stderr)
  t.regex(run.stdout, /^downloaded config\.json \(\d+ B\)$/m)
  t.regex(run.stdout, /^downloaded model\.safetensors \(3\.3 MB\)$/m)
  t.regex(run.stdout, new RegExp(`${TINY} is in the cache: .*snapshots/[0-9a-f]{40}`))
  const listed = JSON.parse((await cli(['cache', 'ls', '--json'], { env })).stdout)
  t.is(listed.length, 1)
  t.like(listed[0], { id: TINY, revision: 'main' })
  t.true(listed[0].size > 3_000_000)
  const table = (await cli(['cache', 'ls'], { env })).stdout
  t.regex(table, new RegExp(`^${TINY}\\s+main\\s+\\d+\\.\\d MB\\s+/`, 'm'))
  const viaHub = await cli(['next', '--model', TINY, '--json', TEXT], { env: { ...env, HF_HUB_OFFLINE: '1' } })
  t.deepEqual(JSON.parse(viaHub.stdout).top, await (await model).topK(TEXT, 5))
})

test('download in a terminal draws a progress bar (bytes, rate, ETA); Ctrl-C aborts cleanly', async (t) => {
  const server = await hub
  server.slow.set('model.safetensors', 40)
  const cacheDir = freshCache()
  const env = await hubEnv(cacheDir)
  try {
    const terminal = await Terminal.start([process.execPath, CLI, 'download', TINY], env)
    try {
      const screen = await terminal.waitFor(/█.*\d+%.*MB \/ .*MB.*\/s\s+ETA \d+/)
      t.regex(screen, /model\.safetensors/)
      await terminal.waitFor(/\[exit 0\]/)
      t.regex(await terminal.screen(), /is in the cache/)
    } finally {
      await terminal.close()
    }
    server.slow.set('model.safetensors', 400)
    const interrupted = freshCache()
    const second = await Terminal.start([process.execPath, CLI, 'download', TINY], await hubEnv(interrupted))
    try {
      await second.waitFor(/model\.safetensors.*█?.*%/)
      await second.keys('C-c')
      const screen = await second.waitFor(/\[exit \d+\]/, 10_000)
      t.regex(screen, /interrupted/)
      t.regex(screen, /\[exit 130\]/)
    } finally {
      await second.close()
    }
    const blobs = readdirSync(join(interrupted, `models--${TINY.replace('/', '--')}`, 'blobs'))
    const sha = createHash('sha256')
      .update(readFileSync(join(TINY_MODEL, 'model.safetensors')))
      .digest('hex')
    t.false(blobs.includes(sha) || blobs.some((b) => b.includes('incomplete')), blobs.join())
  } finally {
    server.slow.delete('model.safetensors')
  }
})

test('a bar only on a terminal, and never under CI, NO_COLOR, TERM=dumb or HF_HUB_DISABLE_PROGRESS_BARS', (t) => {
  const tty = { isTTY: true } as NodeJS.WriteStream
  t.true(canDrawBar(tty, {}))
  t.false(canDrawBar({ isTTY: false } as NodeJS.WriteStream, {}))
  for (const env of [{ CI: 'true' }, { NO_COLOR: '' }, { TERM: 'dumb' }, { HF_HUB_DISABLE_PROGRESS_BARS: '1' }]) {
    t.false(canDrawBar(tty, env), JSON.stringify(env))
  }
  t.true(canDrawBar(tty, { CI: '0', HF_HUB_DISABLE_PROGRESS_BARS: '0' }))
})
