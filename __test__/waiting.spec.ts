// Waiting costs no thread: far more streams than batch slots (and than libuv's 4 pool threads)
// all finish while the pool stays free for fs; abandoned streams give their slots back when
// collected, and streams nobody pulls from give them back after streamIdleTimeoutMs.
import { readFile, writeFile, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setImmediate as nextTurn, setTimeout as delay } from 'node:timers/promises'
import test from 'ava'

import { Gpt2, type GenerateStep } from '../index'
import { TINY_MODEL } from './helpers/fixtures'

const OPTIONS = { maxNewTokens: 16, eosTokenId: null }

async function streamedIds(model: Gpt2, prompt: string): Promise<number[]> {
  const ids: number[] = []
  for await (const step of model.stream(prompt, OPTIONS)) ids.push(step.id)
  return ids
}

test('200 concurrent streams on 16 slots all finish, equal to one-by-one runs, and fs is not starved', async (t) => {
  t.timeout(120_000)
  t.is(process.env.UV_THREADPOOL_SIZE, undefined, 'the test is about the default 4 pool threads')
  const model = await Gpt2.fromPretrained(TINY_MODEL, { maxBatchSize: 16 })
  const prompts = Array.from({ length: 200 }, (_, i) => `Stream number ${i} says`)
  const oneByOne: number[][] = []
  for (const prompt of prompts) oneByOne.push(Array.from((await model.generate(prompt, OPTIONS)).newIds))

  const file = join(await mkdtemp(join(tmpdir(), 'nexttoken-')), 'small.txt')
  await writeFile(file, 'one line\n')
  // Reads that complete while the streams still run. Waiting streams once held every pool
  // thread: reads then never completed until the streams had all ended.
  let readsDuringStreams = 0
  let streaming = true
  const reads = (async () => {
    while (streaming) {
      await readFile(file)
      if (streaming) readsDuringStreams++
      await nextTurn()
    }
  })()
  const concurrent = await Promise.all(prompts.map((prompt) => streamedIds(model, prompt)))
  streaming = false
  await reads

  prompts.forEach((prompt, i) => {
    t.deepEqual(concurrent[i], oneByOne[i], prompt)
  })
  // How long the reads take meanwhile is bench/streams/responsiveness.mjs's measure.
  t.true(readsDuringStreams >= 3, `${readsDuringStreams} fs.readFile calls completed during the streams`)
  await model.dispose()
})

test('50 streams abandoned after one step are collected and free their slots', async (t) => {
  t.timeout(60_000)
  const gc = globalThis.gc
  if (!gc) return t.fail('run with --expose-gc (package.json ava.nodeArguments)')
  // Idle timeout off: only collection may free the slots.
  const model = await Gpt2.fromPretrained(TINY_MODEL, { maxBatchSize: 16, streamIdleTimeoutMs: Infinity })
  const collected: boolean[] = []
  const registry = new FinalizationRegistry<number>((i) => (collected[i] = true))
  const abandon = async (i: number) => {
    const iterator = model.stream(`Abandoned ${i}`, { maxNewTokens: 1000, eosTokenId: null })
    registry.register(iterator, i)
    t.false((await iterator.next()).done)
    // No return(), no more next(): the iterator is dropped while it holds a batch slot.
  }
  // Only 16 run at a time: the others get their first step once collected ones free slots.
  let allStarted = false
  const started = Promise.all(Array.from({ length: 50 }, (_, i) => abandon(i))).then(() => (allStarted = true))
  while (!allStarted) {
    gc()
    await delay(10)
  }
  await started
  for (let round = 0; round < 50 && collected.filter(Boolean).length < 50; round++) {
    gc()
    await delay(10)
  }
  t.is(collected.filter(Boolean).length, 50, 'every abandoned iterator was collected')
  const result = await model.generate('After the abandoned streams', OPTIONS)
  t.is(result.newIds.length, 16)
  await model.dispose()
})

test('a stream nobody pulls from ends after streamIdleTimeoutMs, freeing its slot for others', async (t) => {
  t.timeout(60_000)
  // 3 s: far longer than generating 16 tokens on a second model (milliseconds), loaded first.
  const other = await Gpt2.fromPretrained(TINY_MODEL)
  const model = await Gpt2.fromPretrained(TINY_MODEL, { maxBatchSize: 1, streamIdleTimeoutMs: 3000 })
  const idle = model.stream('Held but not read', { maxNewTokens: 1000, eosTokenId: null })
  const first = await idle.next()
  t.false(first.done)
  // The only slot is the idle stream's: this generate runs once the idle stream has timed out.
  // While it waits, the same work on another model runs to its end: the slot was held.
  let waitingDone = false
  const waiting = model.generate('Waiting for the slot', OPTIONS).then((r) => {
    waitingDone = true
    return r
  })
  t.is((await other.generate('Waiting for the slot', OPTIONS)).newIds.length, 16)
  t.false(waitingDone, 'the waiting generate ran before the idle stream gave its slot back')
  const result = await waiting
  t.is(result.newIds.length, 16)
  await other.dispose()

  // Coming back, the reader gets the token generated ahead, then the coded error.
  const steps: GenerateStep[] = [first.value as GenerateStep]
  const err = await t.throwsAsync(async () => {
    for (let next = await idle.next(); !next.done; next = await idle.next()) steps.push(next.value)
  })
  t.is((err as { code?: string }).code, 'ERR_STREAM_IDLE')
  t.regex(err!.message, /idle/)
  t.is(steps.length, 2)
  await model.dispose()
})

test('streamIdleTimeoutMs must be a number above 0 or Infinity', async (t) => {
  for (const streamIdleTimeoutMs of [0, -1, NaN, '100' as unknown as number]) {
    const err = await t.throwsAsync(Gpt2.fromPretrained(TINY_MODEL, { streamIdleTimeoutMs }))
    t.is((err as { code?: string }).code, 'ERR_INVALID_ARG')
  }
})

test('maxBatchSize above the core limit is refused by the core, not wrapped', async (t) => {
  for (const maxBatchSize of [1025, 2 ** 32 + 1]) {
    const err = await t.throwsAsync(Gpt2.fromPretrained(TINY_MODEL, { maxBatchSize }))
    t.is((err as { code?: string }).code, 'ERR_INVALID_ARG')
    t.regex(err!.message, /1 to 1024/)
  }
})

test('maxQueueLength: beyond the batch and the queue a call fails at once with ERR_OVERLOADED', async (t) => {
  t.timeout(60_000)
  const model = await Gpt2.fromPretrained(TINY_MODEL, { maxBatchSize: 2, maxQueueLength: 1 })
  const controller = new AbortController()
  const long = { maxNewTokens: 1000, eosTokenId: null, signal: controller.signal }
  const held = [0, 1, 2].map((i) => model.generate(`Held ${i}`, long).catch((err) => err))
  const err = await t.throwsAsync(model.generate('One too many', OPTIONS))
  t.is((err as { code?: string }).code, 'ERR_OVERLOADED')
  const overflowStream = model.stream('One too many', OPTIONS)
  t.is(((await t.throwsAsync(overflowStream.next())) as { code?: string }).code, 'ERR_OVERLOADED')
  controller.abort()
  for (const e of await Promise.all(held)) t.is((e as { code?: string }).code, 'ABORT_ERR')
  // The places come back once the aborted calls have ended.
  t.is((await model.generate('Room again', OPTIONS)).newIds.length, 16)
  for (const maxQueueLength of [-1, 1.5, NaN]) {
    const bad = await t.throwsAsync(Gpt2.fromPretrained(TINY_MODEL, { maxQueueLength }))
    t.is((bad as { code?: string }).code, 'ERR_INVALID_ARG')
  }
})

test('generateBatch beyond the queue fails as a whole and cancels the rows it started', async (t) => {
  t.timeout(60_000)
  const model = await Gpt2.fromPretrained(TINY_MODEL, { maxBatchSize: 2, maxQueueLength: 1 })
  const rows = ['a', 'b', 'c', 'd', 'e'].map((s) => `Row ${s}`)
  const err = await t.throwsAsync(model.generateBatch(rows, { maxNewTokens: 1000, eosTokenId: null }))
  t.is((err as { code?: string }).code, 'ERR_OVERLOADED')
  // The rows that had started were cancelled and have ended by now: their places are free.
  t.is((await model.generate('Afterwards', OPTIONS)).newIds.length, 16)
})

test('the native next() refuses a second concurrent call by rejecting, not throwing', async (t) => {
  const native = await import('../binding')
  // One slot, held by `slot`: `waiting` stays queued, so its first next() is still pending.
  const model = await native.loadGpt2(TINY_MODEL, undefined, undefined, undefined, { maxBatchSize: 1 })
  const start = (ids: number[], options: object) =>
    model.generate([new Uint32Array(ids)], options, false).generations()[0]
  const slot = start([1, 2, 3], { maxNewTokens: 1000 })
  await slot.next(1)
  const waiting = start([4, 5, 6], { maxNewTokens: 4 })
  const first = waiting.next(1)
  const err = await t.throwsAsync(waiting.next(1))
  t.regex(err!.message, /^ERR_INVALID_ARG: next\(\) was called while another next\(\) was waiting/)
  slot.cancel()
  t.is((await first).steps.length, 1)
})
