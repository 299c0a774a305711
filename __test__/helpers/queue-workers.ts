// Generation workers in child processes (children/queue-worker.cjs) for the queue tests that kill a
// worker or restart Redis under it: started, read line by line, and killed in the test's teardown.
import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import type { ExecutionContext } from 'ava'
import { CHILDREN } from './children'

/** A line the child printed (see queue-worker.cjs). */
export interface WorkerEvent {
  event: 'ready' | 'active' | 'progress' | 'completed' | 'failed' | 'closed'
  jobId?: string
  reason?: string
  concurrency?: number
}

export interface WorkerProcess {
  child: ChildProcess
  /** Every event so far. */
  events: WorkerEvent[]
  /** Resolves with the first event (past or future) that matches; rejects if the child exits first. */
  waitFor(match: (event: WorkerEvent) => boolean, timeoutMs?: number): Promise<WorkerEvent>
  /** Resolves when the child has exited, with its signal or code. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  stderr(): string
}

/** Starts a worker process; `env` adds to the parent's environment (RAYON_NUM_THREADS...). */
export function startWorkerProcess(
  t: ExecutionContext,
  config: Record<string, unknown>,
  env: Record<string, string> = {},
): WorkerProcess {
  const child = spawn(process.execPath, [join(CHILDREN, 'queue-worker.cjs'), JSON.stringify(config)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  })
  t.teardown(() => {
    child.kill('SIGKILL')
  })
  const events: WorkerEvent[] = []
  const waiting = new Set<() => void>()
  let stderr = ''
  let buffered = ''
  child.stdout?.on('data', (chunk) => {
    buffered += chunk
    const lines = buffered.split('\n')
    buffered = lines.pop() ?? ''
    for (const line of lines) events.push(JSON.parse(line))
    for (const check of waiting) check()
  })
  child.stderr?.on('data', (chunk) => (stderr += chunk))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      resolve({ code, signal })
      for (const check of waiting) check()
    }),
  )
  const waitFor = (match: (event: WorkerEvent) => boolean, timeoutMs = 30_000) =>
    new Promise<WorkerEvent>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`no such event in ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs)
      const done = (err?: Error, event?: WorkerEvent) => {
        clearTimeout(timer)
        waiting.delete(check)
        if (err) reject(err)
        else resolve(event as WorkerEvent)
      }
      const check = () => {
        const event = events.find(match)
        if (event) done(undefined, event)
        else if (child.exitCode !== null || child.signalCode !== null)
          done(new Error(`the worker exited (${child.exitCode ?? child.signalCode}); stderr: ${stderr}`))
      }
      waiting.add(check)
      check()
    })
  return { child, events, waitFor, exited, stderr: () => stderr }
}
