// A real redis-server for the queue tests (Debian's `redis-server`; .ci/run installs it): on a
// free loopback port, in a temporary directory, stopped when the test ends whether it passed or
// not. No persistence unless a test asks for it (the restart test), so nothing outlives a run.
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ExecutionContext } from 'ava'

export interface RedisServer {
  port: number
  /** BullMQ's `connection` option for this server. */
  connection: { host: string; port: number }
  /** Kills the server at once (SIGKILL: what it has not written to disk is lost). */
  kill(): Promise<void>
  /** Starts it again on the same port and directory (after `kill`). */
  restart(): Promise<void>
}

/** Every server started in this process, killed on exit if a teardown did not run. */
const started = new Set<ChildProcess>()
process.on('exit', () => {
  for (const child of started) child.kill('SIGKILL')
})

/** A port nothing listens on now (the kernel's pick). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/** Runs redis-server and resolves once it accepts connections. */
function launch(port: number, dir: string, persistent: boolean): Promise<ChildProcess> {
  // `--save ''` turns RDB snapshots off; with `persistent` every write is appended to an
  // fsync'ed AOF in `dir`, so that a killed server restarts with everything it acknowledged.
  const persistence = persistent ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', ...persistence]
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] })
  started.add(child)
  child.on('exit', () => started.delete(child))
  return new Promise((resolve, reject) => {
    let output = ''
    const timer = setTimeout(() => fail(new Error(`redis-server did not start in 10 s:\n${output}`)), 10_000)
    const fail = (err: Error) => {
      clearTimeout(timer)
      child.kill('SIGKILL')
      reject(err)
    }
    child.on('error', (err) =>
      fail(new Error(`cannot run redis-server (apt-get install redis-server): ${err.message}`)),
    )
    child.on('exit', (code) => fail(new Error(`redis-server exited with ${code}:\n${output}`)))
    child.stdout?.on('data', (chunk) => {
      output += chunk
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer)
        child.removeAllListeners('exit')
        child.on('exit', () => started.delete(child))
        resolve(child)
      }
    })
  })
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => child.once('exit', () => resolve()))
}

/** Starts a redis-server for test `t`, stopped (and its directory removed) in `t.teardown`. */
export async function startRedis(t: ExecutionContext, options: { persistent?: boolean } = {}): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'nexttoken-redis-'))
  const port = await freePort()
  let child = await launch(port, dir, options.persistent ?? false)
  t.teardown(async () => {
    child.kill('SIGKILL')
    await exited(child)
    rmSync(dir, { recursive: true, force: true })
  })
  return {
    port,
    connection: { host: '127.0.0.1', port },
    async kill() {
      child.kill('SIGKILL')
      await exited(child)
    },
    async restart() {
      child = await launch(port, dir, options.persistent ?? false)
    },
  }
}
