// The process's and the workers' lifecycles are never held up or crashed by generations:
// worker threads load, run and terminate in any order; process.exit() with streams running exits
// at once. Each scenario runs in a child process (__test__/children/), so a crash is seen as its
// exit signal instead of taking the test runner down.
import { join } from 'node:path'
import test from 'ava'

import { CHILDREN, type ChildExit, expectCleanExit, runNode } from './helpers/children'
import { TINY_MODEL } from './helpers/fixtures'

/** Runs `node children/<script> ...args` (see helpers/children.ts). */
function runChild(script: string, args: string[], timeoutMs: number): Promise<ChildExit> {
  return runNode([join(CHILDREN, script), ...args], timeoutMs)
}

test('the addon loaded only in workers: in sequence, after terminations mid-generation and while waiting for a slot', async (t) => {
  const child = await runChild('workers.cjs', ['workers-only', TINY_MODEL], 60_000)
  expectCleanExit(t, child)
  const { runs, terminateMidGenerationMs, terminateWaitingMs } = JSON.parse(child.stdout)
  t.is(runs.length, 4)
  for (const run of runs) t.deepEqual(run, runs[0], 'every worker generates the same tokens')
  t.is(runs[0].length, 12)
  t.log(
    `worker.terminate(): ${terminateMidGenerationMs.toFixed(1)} ms mid-generation, ${terminateWaitingMs.toFixed(1)} ms waiting for a slot`,
  )
  t.true(terminateMidGenerationMs < 1000, `terminate mid-generation took ${terminateMidGenerationMs} ms`)
  t.true(terminateWaitingMs < 1000, `terminate while waiting for a slot took ${terminateWaitingMs} ms`)
})

test('two workers load and generate at once, each with its own model, and the main thread after them', async (t) => {
  const child = await runChild('workers.cjs', ['two-at-once', TINY_MODEL], 60_000)
  expectCleanExit(t, child)
  const { runs } = JSON.parse(child.stdout)
  t.is(runs.length, 3)
  for (const run of runs) t.deepEqual(run, runs[0])
})

test('process.exit(0) with 20 streams and 10 generations running exits within a second', async (t) => {
  const child = await runChild('exit-while-streaming.cjs', ['exit', TINY_MODEL], 60_000)
  expectCleanExit(t, child)
  const { steps, exitingAt } = JSON.parse(child.stdout)
  const exitMs = child.exitedAt - exitingAt
  t.log(`${steps} steps streamed; exited ${exitMs.toFixed(0)} ms after process.exit(0)`)
  t.true(exitMs < 1000, `exited ${exitMs.toFixed(0)} ms after process.exit(0)`)
})

test('the event loop ends by itself with unread streams holding every slot, within a second', async (t) => {
  const child = await runChild('exit-while-streaming.cjs', ['end', TINY_MODEL], 60_000)
  expectCleanExit(t, child)
  const { steps, exitingAt } = JSON.parse(child.stdout)
  t.is(steps, 16 * 5)
  const exitMs = child.exitedAt - exitingAt
  t.log(`exited ${exitMs.toFixed(0)} ms after the last pull`)
  t.true(exitMs < 1000, `exited ${exitMs.toFixed(0)} ms after the last pull`)
})
