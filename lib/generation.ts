// Driving native generations from JS. The core starts every kind of call (`startCall`: beam
// search or a generation per prompt and continuation, decided on the options it resolves); here
// `generate` (one promise) and `stream` (async iterator) drive one generation, cancellable
// through an AbortSignal, and `results` gathers a call's results. Each `next()` is a promise the
// scheduler settles when tokens are there: waiting holds no thread. A stream abandoned without
// `return()` is cancelled when its iterator is garbage-collected (the native generation cancels
// itself when collected).
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

/** Makes a session's native generation from native options (`Session.generate` / `stream`). */
export type Starter = (options: Record<string, unknown>) => native.NativeGeneration

function refuseIfAborted(signal: AbortSignal | undefined) {
  if (signal?.aborted) throw new AbortError('generation aborted before it started', undefined, { cause: signal.reason })
}

/**
 * Starts a call on the model: the core decides what runs (beam search, or a generation per
 * prompt and continuation) from the options it resolves, and refuses what `stream` cannot read.
 */
export function startCall(
  model: native.NativeGpt2,
  prompts: Uint32Array[],
  options: GenerateOptions,
  stream: boolean,
  limits?: native.NativeLimits,
): native.NativeCall {
  const nativeOptions = toNativeOptions(options)
  refuseIfAborted(options.signal)
  return callNative(() => model.generate(prompts, nativeOptions, stream, limits))
}

/** The one generation of a call that is not a beam search and has one result. */
export function onlyGeneration(call: native.NativeCall): native.NativeGeneration {
  return callNative(() => call.generations())[0]
}

/** A session's generation, continuing its text. */
export function fromSession(starter: Starter, options: GenerateOptions): native.NativeGeneration {
  const nativeOptions = toNativeOptions(options)
  refuseIfAborted(options.signal)
  return callNative(() => starter(nativeOptions))
}

/** Cancels `generation` when `signal` aborts; returns what removes the listener. */
function cancelOnAbort(generation: native.NativeGeneration, signal: AbortSignal | undefined): () => void {
  if (!signal) return () => {}
  // Held weakly: a long-lived signal must not keep an abandoned stream's generation alive, since
  // collecting it is what cancels it and frees its batch slot.
  const weak = new WeakRef(generation)
  const cancel = () => weak.deref()?.cancel()
  signal.addEventListener('abort', cancel, { once: true })
  listeners.register(generation, { signal, cancel }, cancel)
  return () => {
    signal.removeEventListener('abort', cancel)
    listeners.unregister(cancel)
  }
}

function finish(generation: native.NativeGeneration, signal: AbortSignal | undefined): GenerateResult {
  const result = toResult(callNative(() => generation.result()))
  if (result.stopReason === 'abort') {
    throw new AbortError<GenerateResult>('generation aborted', result, { cause: signal?.reason })
  }
  return result
}

export async function generate(generation: native.NativeGeneration, options: GenerateOptions): Promise<GenerateResult> {
  const release = cancelOnAbort(generation, options.signal)
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
  generation: native.NativeGeneration,
  options: GenerateOptions,
): AsyncGenerator<GenerateStep, GenerateResult, undefined> {
  const release = cancelOnAbort(generation, options.signal)
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
 * Every result of a call, in the core's order (prompt by prompt, a prompt's continuations
 * together): its beam searches' best sequences, or its generations decoded together by the
 * scheduler. The generations succeed or fail as one: when one fails (a full queue, say), the
 * others are cancelled, so a failed call leaves nothing running. The caller's signal aborts every
 * one; a per-token callback has no row to name and is not called (beam search refuses it).
 */
export async function results(call: native.NativeCall, options: GenerateOptions): Promise<GenerateResult[]> {
  if (call.isBeamSearch) {
    if (options.onToken !== undefined) throw invalidArg('beam search gives whole sequences: onToken is not called')
    const outputs = await callNativeAsync(() => call.beams())
    return outputs.map(toResult)
  }
  const generations = callNative(() => call.generations())
  const batch = new AbortController()
  setMaxListeners(Infinity, batch.signal) // one listener per row, by design
  const { signal } = options
  const abortAll = () => batch.abort(signal?.reason)
  if (signal?.aborted) abortAll()
  signal?.addEventListener('abort', abortAll, { once: true })
  const rowOptions = { ...options, onToken: undefined, signal: batch.signal }
  let firstError: { error: unknown } | undefined
  const run = (row: native.NativeGeneration) =>
    generate(row, rowOptions).catch((error: unknown) => {
      firstError ??= { error }
      batch.abort(error)
      throw error
    })
  try {
    // Settled, not merely rejected: when the batch fails, the cancelled rows have ended (and
    // given back their places in the queue) by the time the caller hears of it.
    const settled = await Promise.allSettled(generations.map(run))
    if (firstError) throw firstError.error
    return settled.map((row) => (row as PromiseFulfilledResult<GenerateResult>).value)
  } finally {
    signal?.removeEventListener('abort', abortAll)
  }
}
