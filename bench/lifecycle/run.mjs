// How long the process and worker lifecycle events take that the tests only assert happen
// (lifecycle.spec.ts, races.spec.ts: a hang there is a child killed at its timeout):
//   node bench/lifecycle/run.mjs [--model DIR] [--reps N]
// Runs the tests' own child scenarios (__test__/children/) N times each (default 5), each in a
// fresh process, and prints one JSON line with the median and max, in ms, of
//   - worker.terminate() on a worker mid-generation and on one waiting for a batch slot;
//   - worker.terminate() at six moments of a load (races' terminate-while-loading);
//   - from process.exit(0) to the child's exit, with streams and generate calls running, while
//     loads run and while beam searches run; and from the last pull of 16 unread streams to the
//     event loop ending by itself.
// The waiting and event-loop measures (fs.readFile latency and event-loop delay while many
// streams run) are bench/streams/responsiveness.mjs's. Benchmarks are not tests: nothing is
// asserted.
import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const children = join(root, '__test__', 'children')
const { values } = parseArgs({
  options: {
    model: { type: 'string', default: join(root, '__test__', 'fixtures', 'tiny-gpt2') },
    reps: { type: 'string', default: '5' },
  },
})
const reps = Number(values.reps)

/** Runs `node <script> ...args`; resolves with its JSON line and when it exited (epoch ms). */
function child(script, args) {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [join(children, script), ...args, values.model].filter(Boolean), {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let stdout = ''
    let exitedAt = 0
    proc.stdout.on('data', (chunk) => (stdout += chunk))
    proc.on('exit', () => (exitedAt = performance.timeOrigin + performance.now()))
    proc.on('close', (code, signal) => {
      if (code !== 0) return reject(new Error(`${script} ${args.join(' ')}: exit ${code ?? signal}`))
      resolve({ ...JSON.parse(stdout), exitedAt })
    })
  })
}

const summary = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  const round = (x) => Math.round(x * 10) / 10
  return { median: round(sorted[Math.floor(sorted.length / 2)]), max: round(sorted.at(-1)), n: sorted.length }
}

const samples = {}
function add(name, ms) {
  samples[name] ??= []
  samples[name].push(ms)
}
for (let rep = 0; rep < reps; rep++) {
  const workers = await child('workers.cjs', ['workers-only'])
  add('terminateMidGenerationMs', workers.terminateMidGenerationMs)
  add('terminateWaitingForSlotMs', workers.terminateWaitingMs)
  for (const ms of (await child('races.cjs', ['terminate-while-loading'])).terminated)
    add('terminateWhileLoadingMs', ms)
  for (const [name, script, mode] of [
    ['exitWhileStreamingMs', 'exit-while-streaming.cjs', 'exit'],
    ['loopEndWithUnreadStreamsMs', 'exit-while-streaming.cjs', 'end'],
    ['exitWhileLoadingMs', 'races.cjs', 'exit-while-loading'],
    ['exitWhileSearchingMs', 'races.cjs', 'exit-while-searching'],
  ]) {
    const { exitingAt, exitedAt } = await child(script, [mode])
    add(name, exitedAt - exitingAt)
  }
}
console.log(JSON.stringify(Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summary(v)]))))
