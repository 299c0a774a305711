// scripts/check-cycles.mjs, which `npm run lint` runs: it fails on an import cycle in Rust or
// TypeScript and passes the layouts that are not one (a facade re-exporting its children, a
// child using its parent, a unit test reaching across).
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'

import test from 'ava'

const SCRIPT = join(__dirname, '..', 'scripts', 'check-cycles.mjs')

/** Runs the checker on a tree of `files` (path → contents) under `--kind DIR`. */
function check(kind: 'rust' | 'ts', files: Record<string, string>) {
  const dir = mkdtempSync(join(tmpdir(), 'nexttoken-cycles-'))
  try {
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, path)), { recursive: true })
      writeFileSync(join(dir, path), text)
    }
    const run = spawnSync(process.execPath, [SCRIPT, `--${kind}`, dir], { encoding: 'utf8' })
    return { status: run.status, output: run.stdout + run.stderr }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

test('a Rust cycle through a re-export and a path in code fails, naming its files', (t) => {
  const { status, output } = check('rust', {
    'lib.rs': 'pub mod a;\npub mod b;\npub mod c;\npub use a::A;\n',
    'a.rs': 'use crate::b::B;\npub struct A(B);\n',
    'b/mod.rs': 'mod inner;\npub use inner::B;\n',
    'b/inner.rs': 'pub struct B;\nfn f() { crate::c::g() }\n',
    // `crate::A` is lib.rs's re-export of a.rs's A: the cycle goes through a.rs, not lib.rs.
    'c.rs': 'pub fn g() { let _: Option<crate::A> = None; }\n',
  })
  t.is(status, 1, output)
  t.regex(output, /import cycle in .*: a\.rs -> b\/inner\.rs -> c\.rs -> a\.rs/)
})

test('Rust modules that only look cyclic pass', (t) => {
  const { status, output } = check('rust', {
    'lib.rs': 'pub mod a;\npub mod b;\n',
    // A facade re-exports its child, and the child uses what the facade defines.
    'a/mod.rs': 'mod child;\npub use child::C;\npub const N: usize = 1;\n',
    // b uses the child; the child's unit test, a string and a comment name b.
    'a/child.rs':
      'use super::N;\npub struct C([u8; N]);\nfn f() -> &str { "crate::b" } // crate::b\n#[cfg(test)]\nmod tests {\n    use crate::b;\n}\n',
    'b.rs': 'use crate::a::C;\n',
  })
  t.is(status, 0, output)
})

test('a TypeScript cycle fails, type-only imports included', (t) => {
  const { status, output } = check('ts', {
    'main.ts': "import { run } from './commands'\nexport type Io = { out: string }\nrun()\n",
    'commands.ts': "import type { Io } from './main'\nexport function run(io?: Io) {}\n",
    'other.ts': "import { run } from './commands'\n",
  })
  t.is(status, 1, output)
  t.regex(output, /import cycle in TypeScript: commands\.ts -> main\.ts -> commands\.ts/)
  t.is(check('ts', { 'a.ts': "import { b } from './b'\n", 'b.ts': 'export const b = 1\n' }).status, 0)
})
