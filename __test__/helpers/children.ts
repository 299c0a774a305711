// Runs a Node child process for the scenarios that must not run in the test runner itself (a
// crash is seen as the child's exit signal, an exit or a hang as its timing).
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import type { ExecutionContext } from 'ava'

export const CHILDREN = join(__dirname, '..', 'children')

export interface ChildExit {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  /** Date.now() when the child had exited. */
  exitedAt: number
}

/** Runs `node ...args`; kills it after `timeoutMs` (then `signal` is SIGKILL). */
export function runNode(args: string[], timeoutMs: number): Promise<ChildExit> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', reject)
    let exitedAt = 0
    child.on('exit', () => (exitedAt = Date.now()))
    // 'close' comes after 'exit', once the output has been read to its end.
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, exitedAt })
    })
  })
}

/** Asserts that the child neither crashed (a signal) nor failed (an exit code). */
export function expectCleanExit(t: ExecutionContext, child: ChildExit) {
  t.is(child.signal, null, `the child was killed by ${child.signal}; stderr: ${child.stderr}`)
  t.is(child.code, 0, `exit code ${child.code}; stderr: ${child.stderr}`)
}
