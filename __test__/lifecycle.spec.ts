// The process's and the workers' lifecycles are never held up or crashed by generations:
// worker threads load, run and terminate in any order; process.exit() with streams running exits
// and ends. Each scenario runs in a child process (__test__/children/), so a crash is seen as its
// exit signal instead of taking the test runner down, and a hang as the child killed at the
// timeout (60 s, far beyond the ~10 ms these take). How long they take is measured by
// bench/lifecycle/run.mjs, not asserted here.
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
  // The child got here only once both terminate() calls had resolved.
  const { runs } = JSON.parse(child.stdout)
  t.is(runs.length, 4)
  for (const run of runs) t.deepEqual(run, runs[0], 'every worker generates the same tokens')
  t.is(runs[0].length, 12)
})

test('two workers load and generate at once, each with its own model, and the main thread after them', async (t) => {
  const child = await runChild('workers.cjs', ['two-at-once', TINY_MODEL], 60_000)
  expectCleanExit(t, child)
  const { runs } = JSON.parse(child.stdout)
  t.is(runs.length, 3)
  for (const run of runs) t.deepEqual(run, runs[0])
})

test('process.exit(0) with 20 streams and 10 generations running exits cleanly', async (t) => {
  const child = await runChild('exit-while-streaming.cjs', ['exit', TINY_MODEL], 60_000)
  expectCleanExit(t, child)
  const { steps } = JSON.parse(child.stdout)
  t.true(steps >= 200, 'the streams were running when the process exited')
})

test('the event loop ends by itself with unread streams holding every slot', async (t) => {
  const child = await runChild('exit-while-streaming.cjs', ['end', TINY_MODEL], 60_000)
  expectCleanExit(t, child)
  t.is(JSON.parse(child.stdout).steps, 16 * 5)
})
