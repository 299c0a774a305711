// dispose() racing every kind of call, at many timings: nothing crashes or hangs, each call either
// completes or rejects with a coded error (ERR_DISPOSED), and the model's later calls reject with
// ERR_DISPOSED. Models dropped without dispose() are freed by the garbage collector; workers and
// the process end promptly while loads run. (lifecycle.spec.ts covers workers that load and
// generate at once and that are terminated mid-generation or waiting for a slot.)
import { cp, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'

import test, { type ExecutionContext } from 'ava'

import { type ErrorCode, Gpt2, NexttokenError, type Session } from '../index'
import { CHILDREN, expectCleanExit, runNode } from './helpers/children'
import { TINY_MODEL } from './helpers/fixtures'

const LONG = { maxNewTokens: 40, eosTokenId: null }

/** Fails the test instead of hanging it: `promise`, or a rejection after `ms` (far above what it takes). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** Every step of a stream, as one promise. */
async function drain(stream: AsyncIterable<unknown>): Promise<number> {
  let steps = 0
  for await (const _ of stream) steps++
  return steps
}

/** Checks that every call settled, fulfilled or rejected with one of `codes`; returns how many were refused. */
async function settled(t: ExecutionContext, calls: Record<string, Promise<unknown>>, codes: ErrorCode[]) {
  let refused = 0
  for (const [name, call] of Object.entries(calls)) {
    const [outcome] = await within(Promise.allSettled([call]), 60_000, name)
    if (outcome.status === 'fulfilled') continue
    refused++
    const err = outcome.reason
    t.true(err instanceof NexttokenError, `${name} rejected with ${err}`)
    t.true(codes.includes(err.code), `${name}: ${err.code}: ${err.message}`)
  }
  return refused
}

/** Every model call after dispose() rejects with ERR_DISPOSED. */
async function refusesEverything(t: ExecutionContext, model: Gpt2) {
  t.true(model.disposed)
  const calls: Record<string, () => Promise<unknown>> = {
    logits: () => model.logits('Hi'),
    probabilities: () => model.probabilities('Hi'),
    topK: () => model.topK('Hi', 2),
    nextToken: () => model.nextToken('Hi'),
    score: () => model.score('Hi there'),
    generate: () => model.generate('Hi', { maxNewTokens: 2 }),
    beam: () => model.generate('Hi', { maxNewTokens: 2, numBeams: 2 }),
    generateBatch: () => model.generateBatch(['Hi', 'Ho'], { maxNewTokens: 2 }),
    stream: () => drain(model.stream('Hi', { maxNewTokens: 2 })),
    session: () => model.session('Hi'),
  }
  for (const [name, call] of Object.entries(calls)) {
    const err = await t.throwsAsync(call, { instanceOf: NexttokenError }, name)
    t.is(err?.code, 'ERR_DISPOSED', `${name}: ${err?.message}`)
  }
}

/** One call of every kind on `model` (and on `session`), started now. */
function everyCall(model: Gpt2, session: Session, firstToken: () => void): Record<string, Promise<unknown>> {
  return {
    logits: model.logits('Hello world'),
    logitsAll: model.logits('Hello world, once more', { positions: 'all' }),
    probabilities: model.probabilities('Hello'),
    topK: model.topK('Hello', 5),
    score: model.score('The quick brown fox', { topK: 2 }),
    generate: model.generate('Once upon a time', { ...LONG, onToken: firstToken }),
    sampled: model.generate('Once upon a time', { ...LONG, doSample: true, seed: 1 }),
    beam: model.generate('Once upon a time', { maxNewTokens: 10, numBeams: 3, eosTokenId: null }),
    generateBatch: model.generateBatch(['a', 'b c', 'd e f'], { maxNewTokens: 20, eosTokenId: null }),
    stream: drain(model.stream('Streaming', LONG)),
    sessionAppend: session.append(' more text'),
    sessionTopK: session.topK(3),
    sessionGenerate: session.generate({ maxNewTokens: 10, eosTokenId: null }),
    sessionStream: drain(session.stream({ maxNewTokens: 5, eosTokenId: null })),
  }
}

const TIMINGS: [string, (firstToken: Promise<void>) => Promise<unknown>][] = [
  ['in the same tick', async () => {}],
  ...[0, 1, 2, 5, 10, 30].map((ms): [string, () => Promise<unknown>] => [`after ${ms} ms`, () => delay(ms)]),
  ['after the first token', (firstToken) => firstToken],
]

for (const [when, wait] of TIMINGS) {
  test(`dispose() ${when} while every kind of call runs`, async (t) => {
    const model = await Gpt2.fromPretrained(TINY_MODEL)
    const session = await model.session('Hello there')
    let firstToken!: () => void
    const gotFirstToken = new Promise<void>((resolve) => (firstToken = resolve))
    const calls = everyCall(model, session, firstToken)
    await wait(gotFirstToken)
    const disposing = model.dispose()
    const again = model.dispose() // a second dispose while the first runs is harmless
    await within(Promise.all([disposing, again]), 30_000, 'dispose()')
    // Calls already started finish (they hold the weights), or are refused if they had not
    // reached the native side: either way they settle, with a code.
    await settled(t, calls, ['ERR_DISPOSED'])
    await refusesEverything(t, model)
    await model.dispose() // and once more, afterwards
    // A session keeps the weights alive until it is disposed itself (README), then refuses.
    t.is((await session.topK(1)).length, 1)
    await session.dispose()
    const err = await t.throwsAsync(session.topK(1), { instanceOf: NexttokenError })
    t.is(err?.code, 'ERR_DISPOSED')
  })
}

test('a session disposed at many timings while its calls run', async (t) => {
  const model = await Gpt2.fromPretrained(TINY_MODEL)
  for (const ms of [-1, 0, 1, 2, 5, 10]) {
    const session = await model.session('Hello there')
    const calls = {
      append: session.append(' and more'),
      logits: session.logits(),
      topK: session.topK(3),
      fork: session.fork(),
      generate: session.generate({ maxNewTokens: 20, eosTokenId: null }),
      stream: drain(session.stream({ maxNewTokens: 20, eosTokenId: null })),
      truncate: session.truncate(1),
    }
    if (ms >= 0) await delay(ms)
    await within(Promise.all([session.dispose(), session.dispose()]), 60_000, 'session.dispose()')
    await settled(t, calls, ['ERR_DISPOSED'])
    const err = await t.throwsAsync(session.append('x'), { instanceOf: NexttokenError })
    t.is(err?.code, 'ERR_DISPOSED', `after ${ms} ms`)
  }
  t.is((await model.nextToken('Hello')).id >= 0, true, 'the model is untouched')
  await model.dispose()
})

test('dispose() as a load resolves, with calls started in the same tick, for concurrent loads', async (t) => {
  const loads = Array.from({ length: 4 }, (_, i) =>
    Gpt2.fromPretrained(TINY_MODEL).then(async (model) => {
      const calls = { generate: model.generate('Hi', LONG), logits: model.logits('Hi') }
      if (i % 2) await model.dispose()
      else void model.dispose()
      const refused = await settled(t, calls, ['ERR_DISPOSED'])
      await refusesEverything(t, model)
      return refused
    }),
  )
  const refused = await within(Promise.all(loads), 120_000, 'the loads')
  t.is(refused.length, 4)
})

const CHILD = join(CHILDREN, 'races.cjs')

test('models dropped without dispose() are freed by the garbage collector', async (t) => {
  const child = await runNode(['--expose-gc', CHILD, 'gc', TINY_MODEL], 120_000)
  expectCleanExit(t, child)
  const { rounds, collected, threadsBefore, threadsAfter, rss } = JSON.parse(child.stdout)
  t.is(collected, rounds, 'every model object was collected')
  // Each model runs a scheduler thread, which ends only when the native model is dropped.
  if (threadsBefore !== null) t.is(threadsAfter, threadsBefore, 'no model scheduler thread is left')
  const mib = rss.map((bytes: number) => Math.round(bytes / 2 ** 20))
  t.log(`RSS every 5 models (MiB): ${mib.join(', ')}`)
  // One tiny model with its tokenizer is ~20 MiB: 25 more models kept would add 500 MiB.
  t.true(mib.at(-1) - mib[0] < 100, `RSS grew from ${mib[0]} to ${mib.at(-1)} MiB`)
})

test('a worker terminated at every stage of a load; the next worker loads and generates', async (t) => {
  const child = await runNode([CHILD, 'terminate-while-loading', TINY_MODEL], 120_000)
  expectCleanExit(t, child)
  // The child reports once every terminate() has resolved (a hang is the child killed at the
  // timeout); how long they take is bench/lifecycle/run.mjs's.
  const { terminated, newIds } = JSON.parse(child.stdout)
  t.is(terminated.length, 6)
  t.is(newIds.length, 8)
})

test('a worker terminated with session calls and a dispose in flight', async (t) => {
  const child = await runNode([CHILD, 'terminate-with-session-calls', TINY_MODEL], 60_000)
  expectCleanExit(t, child)
  t.is(JSON.parse(child.stdout).newIds.length, 8)
})

for (const [what, scenario] of [
  ['four loads', 'exit-while-loading'],
  ['two long beam searches', 'exit-while-searching'],
]) {
  test(`process.exit(0) while ${what} run exits cleanly`, async (t) => {
    // A hang is the child killed at the timeout, far beyond the milliseconds an exit takes
    // (bench/lifecycle/run.mjs measures them).
    const child = await runNode([CHILD, scenario, TINY_MODEL], 60_000)
    expectCleanExit(t, child)
    t.true('exitingAt' in JSON.parse(child.stdout), 'the child reached process.exit(0)')
  })
}

// Issue 15's first defect: a model.safetensors truncated by another process while a load mapped
// it killed Node with SIGBUS. Loads now read the file (crates/nexttoken/src/files.rs), so a file
// cut short at any moment of a load is a refused load or, if the cut came after the reads, a
// model; never a signal (which would end this test's process).
test('model.safetensors truncated by another process at many moments of its load', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nexttoken-truncated-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await cp(TINY_MODEL, dir, { recursive: true })
  const weights = join(dir, 'model.safetensors')
  const original = await readFile(weights)
  const LOADS = 30
  let refused = 0
  for (let i = 0; i < LOADS; i++) {
    await writeFile(weights, original)
    const load = Gpt2.fromPretrained(dir)
    await delay(i % 6) // 0-5 ms into the load (a tiny model's load takes a few)
    await truncate(weights, original.length >> (1 + (i % 3))) // to a half, a quarter, an eighth
    const [outcome] = await within(Promise.allSettled([load]), 60_000, `load ${i}`)
    if (outcome.status === 'fulfilled') {
      await outcome.value.dispose()
      continue
    }
    t.true(outcome.reason instanceof NexttokenError, String(outcome.reason))
    t.is((outcome.reason as NexttokenError).code, 'ERR_MODEL_INVALID', String(outcome.reason))
    refused++
  }
  t.log(`${refused} of ${LOADS} loads refused, the others done before the cut`)
})
