// npm's `prepare`: on `npm install` / `npm ci` in a clone, build everything (the native addon
// needs Rust); before `npm pack` / `npm publish`, compile the TypeScript only. Published native
// binaries are built per platform by the release workflow and ship in the nexttoken-<platform>
// packages, so packing needs no Rust. binding.js / binding.d.ts (napi-rs' loader and types) are
// committed for the same reason.
import { execSync } from 'node:child_process'

const packing = ['pack', 'publish'].includes(process.env.npm_command ?? '')
const run = (script) => execSync(`npm run ${script}`, { stdio: 'inherit' })
if (!packing) run('build:native')
run('build:ts')
