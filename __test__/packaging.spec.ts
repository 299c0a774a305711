// What `npm install nexttoken` gives a user with no Rust: the root package and this platform's
// binary package are packed as a release packs them (the root's optionalDependencies naming the
// platform packages, as `napi pre-publish` writes them), installed --offline into an empty
// project with a PATH that has no cargo or rustc, and used from CommonJS, ESM and TypeScript.
import { execFile } from 'node:child_process'
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { promisify } from 'node:util'

import test from 'ava'

import { Gpt2 } from '../index'
import { platformPackage } from '../lib/native'
import { TINY_MODEL } from './helpers/fixtures'

const ROOT = join(__dirname, '..')
/** npm's own script: npm sets npm_execpath for what it runs; else where Node's installers put it. */
const NPM_CLI = process.env.npm_execpath?.endsWith('npm-cli.js')
  ? process.env.npm_execpath
  : join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js')
const run = promisify(execFile)

/** PATH without any directory that holds cargo or rustc. */
const PATH = (process.env.PATH ?? '')
  .split(delimiter)
  .filter((dir) => !existsSync(join(dir, 'cargo')) && !existsSync(join(dir, 'rustc')))
  .join(delimiter)
const env = {
  ...process.env,
  PATH,
  npm_config_update_notifier: 'false',
  npm_config_fund: 'false',
  npm_config_audit: 'false',
}

async function npm(cwd: string, ...args: string[]): Promise<string> {
  return (await run(process.execPath, [NPM_CLI, ...args], { cwd, env, maxBuffer: 64 * 1024 * 1024 })).stdout
}

async function node(cwd: string, file: string): Promise<string> {
  return (await run(process.execPath, [file], { cwd, env })).stdout
}

const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string
const platform = platformPackage() // e.g. nexttoken-linux-x64-gnu
const platformDir = platform.replace(/^nexttoken-/, '')

/** Packs this platform's package from npm/<target>/ and the binary the build made. */
async function packPlatform(work: string): Promise<string> {
  const stage = join(work, 'platform')
  cpSync(join(ROOT, 'npm', platformDir), stage, { recursive: true })
  const binary = `nexttoken.${platformDir}.node`
  copyFileSync(join(ROOT, binary), join(stage, binary))
  const [packed] = JSON.parse(await npm(stage, 'pack', '--json', '--pack-destination', work))
  return join(work, packed.filename)
}

/** Packs the root as a release does: then sets the optionalDependencies pre-publish would. */
async function packRoot(work: string): Promise<{ tarball: string; files: string[] }> {
  const [packed] = JSON.parse(await npm(ROOT, 'pack', '--json', '--pack-destination', work))
  const unpacked = join(work, 'root')
  mkdirSync(unpacked)
  await run('tar', ['-xzf', join(work, packed.filename), '-C', unpacked, '--strip-components=1'])
  const manifest = JSON.parse(readFileSync(join(unpacked, 'package.json'), 'utf8'))
  const targets = readdirSync(join(ROOT, 'npm'))
  manifest.optionalDependencies = Object.fromEntries(targets.map((t) => [`nexttoken-${t}`, version]))
  writeFileSync(join(unpacked, 'package.json'), JSON.stringify(manifest, null, 2))
  const [repacked] = JSON.parse(
    await npm(unpacked, 'pack', '--json', '--ignore-scripts', '--pack-destination', join(work, 'final')),
  )
  return { tarball: join(work, 'final', repacked.filename), files: packed.files.map((f: { path: string }) => f.path) }
}

function project(work: string, name: string): string {
  const dir = join(work, name)
  mkdirSync(dir)
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true }))
  return dir
}

const USE_CJS = `
const { Gpt2 } = require('nexttoken')
Gpt2.fromPretrained(${JSON.stringify(TINY_MODEL)})
  .then((m) => m.generate('The meaning of life is', { maxNewTokens: 5 }))
  .then((r) => console.log(JSON.stringify(r.newIds)))
`
const USE_ESM = `
import { Gpt2, NexttokenError } from 'nexttoken'
const m = await Gpt2.fromPretrained(${JSON.stringify(TINY_MODEL)})
const r = await m.generate('The meaning of life is', { maxNewTokens: 5 })
console.log(JSON.stringify(r.newIds), typeof NexttokenError)
`
const USE_TS = `
import { Gpt2, type GenerateResult } from 'nexttoken'
const result: Promise<GenerateResult> = Gpt2.fromPretrained('gpt2').then((m) => m.generate('Hi', { maxNewTokens: 5 }))
// @ts-expect-error maxNewTokens is a number
Gpt2.fromPretrained('gpt2').then((m) => m.generate('Hi', { maxNewTokens: 'five' }))
export { result }
`

const USE_QUEUE = `
const { relative } = require('node:path')
const resolved = relative('node_modules', require.resolve('nexttoken/queue'))
try { require('nexttoken/queue') } catch (err) { console.log(resolved, err.code, /'bullmq'/.test(err.message) ? 'bullmq' : err.message) }
`

test('packed without Rust, installed offline without Rust: CommonJS, ESM and types work; alone the root names the missing package', async (t) => {
  t.timeout(5 * 60_000)
  const work = mkdtempSync(join(tmpdir(), 'nexttoken-pack-'))
  mkdirSync(join(work, 'final'))
  const expected = JSON.stringify(
    (await (await Gpt2.fromPretrained(TINY_MODEL)).generate('The meaning of life is', { maxNewTokens: 5 })).newIds,
  )

  const started = Date.now()
  const platformTarball = await packPlatform(work)
  const root = await packRoot(work)
  t.log(`packed in ${Date.now() - started} ms with no cargo on PATH`)

  // Only what users need: compiled JS and types, the loader, the README; no sources of any kind.
  t.true(root.files.includes('index.js') && root.files.includes('cli.js') && root.files.includes('binding.js'))
  const unwanted = root.files.filter(
    (f) => /^(__test__|crates|bench|scripts|examples|npm)\/|\.(ts|rs|node)$/.test(f) && !f.endsWith('.d.ts'),
  )
  t.deepEqual(unwanted, [])

  const app = project(work, 'app')
  const installing = Date.now()
  await npm(app, 'install', '--offline', platformTarball, root.tarball)
  t.log(`installed offline in ${Date.now() - installing} ms`)
  writeFileSync(join(app, 'use.cjs'), USE_CJS)
  writeFileSync(join(app, 'use.mjs'), USE_ESM)
  t.is((await node(app, 'use.cjs')).trim(), expected)
  t.is((await node(app, 'use.mjs')).trim(), `${expected} function`)
  // The installed types, checked by the TypeScript the repo uses.
  writeFileSync(join(app, 'use.mts'), USE_TS)
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
  const checked = await run(
    process.execPath,
    [tsc, '--noEmit', '--strict', '--module', 'node16', '--target', 'es2022', '--skipLibCheck', 'use.mts'],
    { cwd: app, env },
  ).then(
    () => 'ok',
    (err: { stdout: string }) => err.stdout,
  )
  t.is(checked, 'ok')
  // nexttoken/queue: packed and exported, but its peer bullmq is optional, so npm installed none
  // and only the subpath (never the root, used above) needs it.
  t.true(root.files.includes('lib/queue/index.js') && root.files.includes('lib/queue/index.d.ts'))
  t.false(existsSync(join(app, 'node_modules', 'bullmq')))
  writeFileSync(join(app, 'queue.cjs'), USE_QUEUE)
  t.is(
    (await node(app, 'queue.cjs')).trim(),
    `${join('nexttoken', 'lib', 'queue', 'index.js')} MODULE_NOT_FOUND bullmq`,
  )
  const bin = await node(app, join('node_modules', '.bin', 'nexttoken')).catch((err: { stdout: string }) => err.stdout)
  t.regex(bin, /nexttoken: GPT-2 from the command line/)

  // The root package alone: npm skips the optional platform package it cannot fetch offline.
  const alone = project(work, 'alone')
  await npm(alone, 'install', '--offline', root.tarball)
  writeFileSync(
    join(alone, 'use.cjs'),
    "try { require('nexttoken') } catch (err) { console.log(err.code, err.message) }",
  )
  const failure = await node(alone, 'use.cjs')
  t.regex(failure, new RegExp(`^ERR_BINARY_NOT_FOUND .*the package ${platform} is not installed`))
})
