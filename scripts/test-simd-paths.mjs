// Re-runs the golden tests, the batch-invariance ones (a row's bits alone and among many) and the
// packed cache's (on the levels that pack fp32) on every instruction set below the best this CPU
// has (the main test run covers that one), by forcing it with NEXTTOKEN_SIMD: one machine tests
// the AVX-512, AVX2 and portable kernels. Part of `npm test`.
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

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
  console.log(`\n[NEXTTOKEN_SIMD=${level}] ${command} ${args.join(' ')}`)
  const result = spawnSync(command, args, { stdio: 'inherit', env: { ...process.env, NEXTTOKEN_SIMD: level } })
  if (result.status !== 0) process.exit(result.status ?? 1)
}

const [best, ...lower] = levels()
console.log(`this CPU runs ${best}; re-running the goldens on ${lower.join(', ') || 'nothing lower'}`)
for (const level of lower) {
  run(
    'cargo',
    [
      'test',
      '--release',
      '--locked',
      '-p',
      'nexttoken',
      '--lib',
      '--test',
      'goldens',
      '--test',
      'gguf',
      '--test',
      'session',
    ],
    level,
  )
  run('npx', ['ava', ...GOLDEN_SPECS, ...(level === 'portable' ? [] : PACKED_SPECS)], level)
}
