// Driving a native generation from JS: `generate` (one promise) and `stream` (async iterator),
// both cancellable through an AbortSignal. Each `next()` is a promise the scheduler settles when
// tokens are there: waiting holds no thread. A stream abandoned without `return()` is cancelled
// when its iterator is garbage-collected (the native generation cancels itself when collected).
import { setMaxListeners } from 'node:events'
import type * as native from '../binding'
import { AbortError, callNative, callNativeAsync, invalidArg } from './errors'
import {
  type GenerateOptions,
  type GenerateResult,
  type GenerateStep,
  toNativeOptions,
  toResult,
  toStep,
} from './generate-options'

/** generate asks for every token at once: the scheduler runs it at full speed (checking for an abort before each token). */
const ALL_STEPS = 0xffffffff

/**
 * A stream keeps this many tokens asked for beyond the one being waited on, so that its sequence
 * stays in every batched forward pass while the consumer handles a token; an abort therefore
 * stops it at most this many tokens past the last one the consumer saw.
 */
const STREAM_LOOKAHEAD = 1

/** Removes the abort listener of a generation collected before it could remove it itself. */
const listeners = new FinalizationRegistry<{ signal: AbortSignal; cancel: () => void }>(({ signal, cancel }) =>
  signal.removeEventListener('abort', cancel),
)

/** Starts a native generation with the given options: of a prompt on the model, or from a session. */
export type Starter = (options: Record<string, unknown>) => native.NativeGeneration

/** A starter for `ids` on `model`. */
export function fromPrompt(model: native.NativeGpt2, ids: Uint32Array): Starter {
  return (options) => model.startGeneration(ids, options)
}

function start(starter: Starter, options: GenerateOptions, paddedLength?: number, sequenceIndex?: number) {
  const nativeOptions = toNativeOptions(options, paddedLength, sequenceIndex)
  const { signal } = options
  if (signal?.aborted) throw new AbortError('generation aborted before it started', undefined, { cause: signal.reason })
  const generation = callNative(() => starter(nativeOptions))
  if (!signal) return { generation, release: () => {} }
  // Held weakly: a long-lived signal must not keep an abandoned stream's generation alive, since
  // collecting it is what cancels it and frees its batch slot.
  const weak = new WeakRef(generation)
  const cancel = () => weak.deref()?.cancel()
  signal.addEventListener('abort', cancel, { once: true })
  listeners.register(generation, { signal, cancel }, cancel)
  const release = () => {
    signal.removeEventListener('abort', cancel)
    listeners.unregister(cancel)
  }
  return { generation, release }
}

function finish(generation: native.NativeGeneration, signal: AbortSignal | undefined): GenerateResult {
  const result = toResult(callNative(() => generation.result()))
  if (result.stopReason === 'abort') {
    throw new AbortError<GenerateResult>('generation aborted', result, { cause: signal?.reason })
  }
  return result
}

export async function generate(
  starter: Starter,
  options: GenerateOptions,
  paddedLength?: number,
  sequenceIndex?: number,
): Promise<GenerateResult> {
  const { generation, release } = start(starter, options, paddedLength, sequenceIndex)
  try {
    const { onToken } = options
    for (;;) {
      const { steps, done } = await callNativeAsync(() => generation.next(ALL_STEPS))
      if (onToken)
        steps.forEach((step) => {
          onToken(toStep(step))
        })
      if (done) break
    }
    return finish(generation, options.signal)
  } finally {
    generation.cancel() // a no-op when finished; stops the work if onToken threw
    release()
  }
}

export async function* stream(
  starter: Starter,
  options: GenerateOptions,
): AsyncGenerator<GenerateStep, GenerateResult, undefined> {
  const { generation, release } = start(starter, options)
  try {
    generation.ask(STREAM_LOOKAHEAD)
    for (;;) {
      const { steps, done } = await callNativeAsync(() => generation.next(1))
      // Once aborted, tokens generated ahead are not handed out; the partial result has them.
      if (options.signal?.aborted) {
        while (!done && !(await callNativeAsync(() => generation.next(ALL_STEPS))).done);
        break
      }
      for (const step of steps.map(toStep)) {
        options.onToken?.(step)
        yield step
      }
      if (done) break
    }
    return finish(generation, options.signal)
  } finally {
    generation.cancel() // the consumer may have stopped early (break): free the sequence
    release()
  }
}

/**
 * Beam search from `ids`, on a thread of its own: the best finished sequences, best first
 * (`numReturnSequences` of them, 1 by default). The signal is checked before it starts.
 */
export async function beamSearch(
  model: native.NativeGpt2,
  ids: Uint32Array,
  options: GenerateOptions,
): Promise<GenerateResult[]> {
  const nativeOptions = toNativeOptions(options)
  if (options.onToken !== undefined) throw invalidArg('beam search gives whole sequences: onToken is not called')
  if (options.signal?.aborted)
    throw new AbortError('generation aborted before it started', undefined, { cause: options.signal.reason })
  const outputs = await callNativeAsync(() => model.beamSearch(ids, nativeOptions))
  return outputs.map(toResult)
}

/** One generation of a batch: how to start it, and which of its prompt's continuations it is. */
interface Row {
  starter: Starter
  sequenceIndex?: number
}

/**
 * `generate` for each row, decoded together by the scheduler. Lengths count as in transformers'
 * left-padded batch: `maxLength` (and the default length) from the longest prompt. With
 * `numReturnSequences: n`, each prompt is read once (a native session holds its KV cache) and
 * continued n ways; the results are in prompt order, the n of each prompt together, as
 * transformers returns them. The rows succeed or fail as one: when a row fails (a full queue,
 * say), the others are cancelled, so a failed batch leaves nothing running. The caller's signal
 * aborts every row.
 */
export async function generateBatch(
  model: native.NativeGpt2,
  prompts: Uint32Array[],
  options: Omit<GenerateOptions, 'onToken'>,
): Promise<GenerateResult[]> {
  const paddedLength = Math.max(0, ...prompts.map((prompt) => prompt.length))
  const n = options.numReturnSequences
  if (n === undefined)
    return runAll(
      prompts.map((prompt) => ({ starter: fromPrompt(model, prompt) })),
      options,
      paddedLength,
    )
  toNativeOptions(options, paddedLength) // JS types first: a bad option fails before any prefill
  const sessions: native.NativeSession[] = []
  try {
    const rows: Row[] = []
    for (const prompt of prompts) {
      let starter = fromPrompt(model, prompt)
      if (prompt.length > 0) {
        const session = callNative(() => model.session())
        sessions.push(session)
        await callNativeAsync(() => session.append(prompt))
        starter = (nativeOptions) => session.startGeneration(nativeOptions)
      }
      // (At least one row, so that the core judges n itself: 0 is refused there.)
      for (let i = 0; i < Math.max(n, 1); i++) rows.push({ starter, sequenceIndex: i })
    }
    return await runAll(rows, options, paddedLength)
  } finally {
    for (const session of sessions) session.dispose()
  }
}

async function runAll(
  rows: Row[],
  options: Omit<GenerateOptions, 'onToken'>,
  paddedLength: number,
): Promise<GenerateResult[]> {
  const batch = new AbortController()
  setMaxListeners(Infinity, batch.signal) // one listener per row, by design
  const { signal } = options
  const abortAll = () => batch.abort(signal?.reason)
  if (signal?.aborted) abortAll()
  signal?.addEventListener('abort', abortAll, { once: true })
  // A per-token callback has no row to name.
  const rowOptions = { ...options, onToken: undefined, signal: batch.signal }
  let firstError: { error: unknown } | undefined
  const run = (row: Row) =>
    generate(row.starter, rowOptions, paddedLength, row.sequenceIndex).catch((error: unknown) => {
      firstError ??= { error }
      batch.abort(error)
      throw error
    })
  try {
    // Settled, not merely rejected: when the batch fails, the cancelled rows have ended (and
    // given back their places in the queue) by the time the caller hears of it.
    const settled = await Promise.allSettled(rows.map(run))
    if (firstError) throw firstError.error
    return settled.map((row) => (row as PromiseFulfilledResult<GenerateResult>).value)
  } finally {
    signal?.removeEventListener('abort', abortAll)
  }
}
