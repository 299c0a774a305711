// Re-runs the golden tests, the batch-invariance ones (a row's bits alone and among many) and the
// packed cache's (on the levels that pack fp32) on every instruction set below the best this CPU
// has (the main test run covers that one), by forcing it with NEXTTOKEN_SIMD: one machine tests
// the AVX-512, AVX2 and portable kernels. Part of `npm test`.
//
// Then it says which kernel paths were exercised: the kernel tests record, through
// NEXTTOKEN_TESTED_PATHS (crates/nexttoken/tests/common/mod.rs, `kernel_path`), whether the
// path they test ran or why they returned early (cargo shows such a test as `ok`). It prints
//   kernel paths tested: avx512f no, avx512bf16 no, avx512vnni no, avx2 yes, avx2-int8 yes, portable yes
// with the reason and the tests that did not run for each "no", and appends it to the GitHub
// Actions job summary where there is one. NEXTTOKEN_REQUIRE_PATHS=avx512f,avx512bf16 (a comma
// list) fails the run when one of those paths did not run: for a CI machine that has them.
//
//   node scripts/test-simd-paths.mjs               # what `npm test` runs
//   node scripts/test-simd-paths.mjs --paths-only  # only the kernel unit tests, at every level
import { spawnSync } from 'node:child_process'
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const GOLDEN_SPECS = [
  '__test__/logits.spec.ts',
  '__test__/generate.spec.ts',
  '__test__/processors.spec.ts',
  '__test__/score.spec.ts',
  '__test__/beam.spec.ts',
  '__test__/dtype.spec.ts',
  '__test__/batch.spec.ts',
]

/** Specs of the packed weights, re-run on every level that packs fp32 (AVX2 and up). */
const PACKED_SPECS = ['__test__/packed-cache.spec.ts']

/** The kernel paths, in the order the summary lists them. */
const PATHS = ['avx512f', 'avx512bf16', 'avx512vnni', 'avx2', 'avx2-int8', 'portable']
/** `simd::Level` names, as NEXTTOKEN_SIMD takes them, and the path each one is. */
const LEVEL_PATH = { avx512: 'avx512f', avx2: 'avx2', portable: 'portable' }

const pathsOnly = process.argv.includes('--paths-only')
const recordDir = mkdtempSync(join(tmpdir(), 'nexttoken-paths-'))
const RECORD = join(recordDir, 'tested-paths.tsv')

/** Levels this CPU runs, best first (Linux x86_64 reads them from /proc/cpuinfo). */
function levels() {
  let flags = ''
  try {
    flags = readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1] ?? ''
  } catch {}
  const has = (flag) => flags.split(/\s+/).includes(flag)
  return [...(has('avx512f') ? ['avx512'] : []), ...(has('avx2') && has('fma') ? ['avx2'] : []), 'portable']
}

function run(command, args, level) {
  const env = { ...process.env, NEXTTOKEN_TESTED_PATHS: RECORD }
  if (level === undefined) delete env.NEXTTOKEN_SIMD
  else env.NEXTTOKEN_SIMD = level
  console.log(`\n[NEXTTOKEN_SIMD=${level ?? '(unset)'}] ${command} ${args.join(' ')}`)
  const result = spawnSync(command, args, { stdio: 'inherit', env })
  if (result.status !== 0) process.exit(result.status ?? 1)
}

const CARGO = ['test', '--release', '--locked', '-p', 'nexttoken']
const [best, ...lower] = levels()

// The kernel unit tests at the best level: `npm test`'s cargo run covered them without
// recording which paths they took (`ops::` is the kernels and the level check).
run('cargo', [...CARGO, '--lib', 'ops::'], undefined)
console.log(`this CPU runs ${best}; re-running the goldens on ${lower.join(', ') || 'nothing lower'}`)
for (const level of lower) {
  if (pathsOnly) {
    run('cargo', [...CARGO, '--lib', 'ops::'], level)
    continue
  }
  run('cargo', [...CARGO, '--lib', '--test', 'goldens', '--test', 'gguf', '--test', 'session'], level)
  run('npx', ['ava', ...GOLDEN_SPECS, ...(level === 'portable' ? [] : PACKED_SPECS)], level)
}

// path -> { ran: Set of tests, skipped: Map test -> why }
const seen = Object.fromEntries(PATHS.map((path) => [path, { ran: new Set(), skipped: new Map() }]))
const lines = existsSync(RECORD) ? readFileSync(RECORD, 'utf8').split('\n').filter(Boolean) : []
rmSync(recordDir, { recursive: true, force: true })
for (const line of lines) {
  const [path, outcome, test, why] = line.split('\t')
  const entry = seen[LEVEL_PATH[path] ?? path]
  if (!entry) throw new Error(`unknown kernel path in ${RECORD}: ${line}`)
  if (outcome === 'ran') entry.ran.add(test)
  else entry.skipped.set(test, why)
}
const ran = (path) => seen[path].ran.size > 0
const summary = [`kernel paths tested: ${PATHS.map((path) => `${path} ${ran(path) ? 'yes' : 'no'}`).join(', ')}`]
for (const path of PATHS.filter((p) => !ran(p))) {
  const skipped = [...seen[path].skipped]
  const reasons = [...new Set(skipped.map(([, why]) => why))].join('; ') || 'no test recorded it'
  const tests = skipped
    .map(([test]) => test)
    .filter((test) => test !== '?' && !test.endsWith('the_paths_in_force_follow_the_cpu_and_the_override'))
  summary.push(
    `  ${path}: not run: ${reasons}${tests.length ? ` (returned early: ${[...new Set(tests)].join(', ')})` : ''}`,
  )
}
console.log(`\n${summary.join('\n')}`)
if (process.env.GITHUB_STEP_SUMMARY) {
  appendFileSync(process.env.GITHUB_STEP_SUMMARY, `\n\`\`\`\n${summary.join('\n')}\n\`\`\`\n`)
}

const required = (process.env.NEXTTOKEN_REQUIRE_PATHS ?? '')
  .split(',')
  .map((p) => p.trim())
  .filter(Boolean)
const unknown = required.filter((path) => !PATHS.includes(path))
if (unknown.length) {
  console.error(`NEXTTOKEN_REQUIRE_PATHS names unknown paths: ${unknown.join(', ')} (known: ${PATHS.join(', ')})`)
  process.exit(1)
}
const missing = required.filter((path) => !ran(path))
if (missing.length) {
  console.error(`NEXTTOKEN_REQUIRE_PATHS: ${missing.join(', ')} did not run on this machine`)
  process.exit(1)
}
