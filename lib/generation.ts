// Driving a native generation from JS: `generate` (one promise) and `stream` (async iterator),
// both cancellable through an AbortSignal. Each `next()` is a promise the scheduler settles when
// tokens are there: waiting holds no thread. A stream abandoned without `return()` is cancelled
// when its iterator is garbage-collected (the native generation cancels itself when collected).
import { setMaxListeners } from 'node:events'
import type * as native from '../binding'
import { AbortError, callNative, callNativeAsync } from './errors'
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
export type Starter = (options: native.NativeGenerateOptions) => native.NativeGeneration

/** A starter for `ids` on `model`. */
export function fromPrompt(model: native.NativeGpt2, ids: Uint32Array): Starter {
  return (options) => model.startGeneration(ids, options)
}

function start(starter: Starter, options: GenerateOptions, paddedLength?: number) {
  const nativeOptions = toNativeOptions(options, paddedLength)
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
): Promise<GenerateResult> {
  const { generation, release } = start(starter, options, paddedLength)
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
 * `generate` for each row, decoded together by the scheduler. Lengths count as in transformers'
 * left-padded batch: `maxLength` (and the default length) from the longest prompt. The rows
 * succeed or fail as one: when a row fails (a full queue, say), the others are cancelled, so a
 * failed batch leaves nothing running. The caller's signal aborts every row.
 */
export async function generateBatch(
  model: native.NativeGpt2,
  rows: Uint32Array[],
  options: Omit<GenerateOptions, 'onToken'>,
): Promise<GenerateResult[]> {
  const paddedLength = Math.max(0, ...rows.map((row) => row.length))
  const batch = new AbortController()
  setMaxListeners(Infinity, batch.signal) // one listener per row, by design
  const { signal } = options
  const abortAll = () => batch.abort(signal?.reason)
  if (signal?.aborted) abortAll()
  signal?.addEventListener('abort', abortAll, { once: true })
  // A per-token callback has no row to name.
  const rowOptions = { ...options, onToken: undefined, signal: batch.signal }
  let firstError: { error: unknown } | undefined
  const run = (row: Uint32Array) =>
    generate(fromPrompt(model, row), rowOptions, paddedLength).catch((error: unknown) => {
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
