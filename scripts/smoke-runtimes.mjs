// Bun and Deno, as a user of each meets nexttoken (issue 30). Run with Node, after the build and
// `npm ci --prefix tools/runtimes` (which installs the pinned Bun and Deno binaries):
//   node scripts/smoke-runtimes.mjs [bun] [deno]
// 1. __test__/runtimes/smoke.mjs under each runtime, from the repo.
// 2. The package as npm installs it: the root and this platform's binary package are packed as a
//    release packs them (as __test__/packaging.spec.ts does) and installed offline into an empty
//    project; there `bunx nexttoken`, `bunx --bun nexttoken`, `deno run -A npm:nexttoken` and an
//    ESM `import { Gpt2 } from 'nexttoken'` under each runtime run the tiny model.
// Prints `runtimes: N passed, N failed` last; exits 1 on a failure.
import { execFileSync, spawnSync } from 'node:child_process'
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
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const TOOLS = join(ROOT, 'tools', 'runtimes', 'node_modules')
const RUNTIMES = {
  bun: { bin: join(TOOLS, 'bun', 'bin', 'bun'), run: [] },
  deno: { bin: join(TOOLS, 'deno', 'deno'), run: ['run', '-A'] },
}
const TINY = join(ROOT, '__test__', 'fixtures', 'tiny-gpt2')
const NPM_CLI = process.env.npm_execpath?.endsWith('npm-cli.js')
  ? process.env.npm_execpath
  : join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js')

const wanted = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(RUNTIMES)
for (const name of wanted) {
  if (!RUNTIMES[name]) throw new Error(`unknown runtime ${name}: bun or deno`)
  if (!existsSync(RUNTIMES[name].bin)) {
    throw new Error(`${RUNTIMES[name].bin} is missing: run npm ci --prefix tools/runtimes`)
  }
}

let passed = 0
let failed = 0
function result(ok, name, detail = '') {
  if (ok) passed++
  else failed++
  console.log(`  ${ok ? '✔' : '✘'} ${name}${ok || !detail ? '' : `\n    ${detail.trim().replaceAll('\n', '\n    ')}`}`)
}

// 1. The smoke suite, from the repo.
for (const name of wanted) {
  const { bin, run } = RUNTIMES[name]
  const version = execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim().split('\n')[0]
  const started = Date.now()
  const smoke = spawnSync(bin, [...run, join(ROOT, '__test__', 'runtimes', 'smoke.mjs')], {
    stdio: 'inherit',
    cwd: ROOT,
    timeout: 5 * 60_000,
  })
  result(smoke.status === 0, `${name} (${version}): the smoke suite, ${Date.now() - started} ms`)
}

// 2. As installed from npm.
const npm = (cwd, ...args) =>
  execFileSync(process.execPath, [NPM_CLI, ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' },
  })
const work = mkdtempSync(join(tmpdir(), 'nexttoken-runtimes-'))
const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version
const binary = readdirSync(ROOT).find((f) => /^nexttoken\..+\.node$/.test(f))
if (!binary) throw new Error('no native binary in the repo root: run npm run build first')
const platformDir = binary.replace(/^nexttoken\.|\.node$/g, '')
const stage = join(work, 'platform')
cpSync(join(ROOT, 'npm', platformDir), stage, { recursive: true })
copyFileSync(join(ROOT, binary), join(stage, binary))
const [platformPacked] = JSON.parse(npm(stage, 'pack', '--json', '--pack-destination', work))
const [rootPacked] = JSON.parse(npm(ROOT, 'pack', '--json', '--ignore-scripts', '--pack-destination', work))
const unpacked = join(work, 'root')
mkdirSync(unpacked)
execFileSync('tar', ['-xzf', join(work, rootPacked.filename), '-C', unpacked, '--strip-components=1'])
const manifest = JSON.parse(readFileSync(join(unpacked, 'package.json'), 'utf8'))
manifest.optionalDependencies = Object.fromEntries(
  readdirSync(join(ROOT, 'npm')).map((t) => [`nexttoken-${t}`, version]),
)
writeFileSync(join(unpacked, 'package.json'), JSON.stringify(manifest, null, 2))
mkdirSync(join(work, 'final'))
const [final] = JSON.parse(
  npm(unpacked, 'pack', '--json', '--ignore-scripts', '--pack-destination', join(work, 'final')),
)
const app = join(work, 'app')
mkdirSync(app)
writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }))
npm(app, 'install', '--offline', join(work, platformPacked.filename), join(work, 'final', final.filename))
writeFileSync(
  join(app, 'use.mjs'),
  `import { Gpt2 } from 'nexttoken'
const model = await Gpt2.fromPretrained(${JSON.stringify(TINY)})
const { newIds } = await model.generate('The meaning of life is', { maxNewTokens: 5 })
console.log(JSON.stringify(newIds))
await model.dispose()
`,
)
const expected = spawnSync(process.execPath, ['use.mjs'], { cwd: app, encoding: 'utf8' }).stdout.trim()

/** Runs `bin args` in the app; passes when it exits 0 and its stdout matches `pattern`. */
function inApp(name, bin, args, pattern) {
  const run = spawnSync(bin, args, { cwd: app, encoding: 'utf8', timeout: 120_000 })
  const ok = run.status === 0 && pattern.test(run.stdout)
  result(ok, name, `exit ${run.status}${run.signal ? ` (${run.signal})` : ''}\n${run.stdout}\n${run.stderr}`)
}

const NEXT = ['next', '--model', TINY, 'Hello']
const NEXT_OUT = /next: 17707 /
for (const name of wanted) {
  const { bin, run } = RUNTIMES[name]
  inApp(
    `${name}: import { Gpt2 } from 'nexttoken' (installed from a tarball)`,
    bin,
    [...run, 'use.mjs'],
    new RegExp(`^${expected.replace(/[[\]]/g, '\\$&')}$`, 'm'),
  )
  if (name === 'bun') {
    // As typed: Bun runs the bin's `#!/usr/bin/env node` with Node where there is one; --bun runs it on Bun.
    inApp('bunx nexttoken next', bin, ['x', 'nexttoken', ...NEXT], NEXT_OUT)
    inApp('bunx --bun nexttoken next', bin, ['x', '--bun', 'nexttoken', ...NEXT], NEXT_OUT)
  } else {
    inApp('deno run -A npm:nexttoken next', bin, ['run', '-A', 'npm:nexttoken', ...NEXT], NEXT_OUT)
    inApp(
      'deno run -A node_modules/nexttoken/cli.js next',
      bin,
      ['run', '-A', join('node_modules', 'nexttoken', 'cli.js'), ...NEXT],
      NEXT_OUT,
    )
  }
}

console.log(`runtimes: ${passed} passed, ${failed} failed`)
process.exit(failed === 0 ? 0 : 1)
