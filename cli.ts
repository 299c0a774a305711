#!/usr/bin/env node
// The `nexttoken` command. Ctrl-C aborts what is running (a download, a generation) through one
// signal; a second Ctrl-C exits at once.
import { main } from './lib/cli/main'

const interrupt = new AbortController()
process.once('SIGINT', () => {
  interrupt.abort()
  process.once('SIGINT', () => process.exit(130))
})

main(process.argv.slice(2), { ...process, signal: interrupt.signal }).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    console.error(err)
    process.exitCode = 1
  },
)
