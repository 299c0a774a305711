// A request's choices: every prompt's continuations, started as one call (so that they share the
// model's continuous batching, and a prompt's `n` continuations read it once), then driven
// together. Each step reaches `onStep` (awaited when streaming, so that a slow client holds back
// its own generation); when one fails or the request is abandoned, the others are cancelled.
import type * as native from '../../binding'
import type { GenerateOptions, GenerateResult, GenerateStep } from '../generate-options'
import * as generation from '../generation'
import type { Gpt2 } from '../gpt2'

export interface Choice {
  /** The choice's place in the response: prompt by prompt, a prompt's continuations together. */
  index: number
  /** Which prompt it continues. */
  prompt: number
}

export type OnStep = (choice: Choice, step: GenerateStep) => void | Promise<void>

async function drive(
  row: native.NativeGeneration,
  signal: AbortSignal,
  onStep: (step: GenerateStep) => void | Promise<void>,
  streamed: boolean,
): Promise<GenerateResult> {
  // Not streamed: every token asked for at once, the steps gathered as they come.
  if (!streamed) return generation.generate(row, { signal, onToken: (step) => void onStep(step) })
  const steps = generation.stream(row, { signal })
  for (;;) {
    const next = await steps.next()
    if (next.done) return next.value
    await onStep(next.value)
  }
}

/**
 * Starts `n` continuations of each prompt (the call's options say how many): their generations
 * in choice order. Synchronous, so that a refusal (a bad option, a full queue) comes before
 * anything is sent.
 */
export function startChoices(model: Gpt2, prompts: Uint32Array[], options: GenerateOptions): native.NativeGeneration[] {
  return model.startGenerations(prompts, options)
}

/**
 * Runs the started generations to their ends (`n` per prompt); resolves with their results in
 * choice order. `signal` aborting (the client left) cancels them all, as one failing does.
 */
export async function runChoices(
  rows: native.NativeGeneration[],
  n: number,
  signal: AbortSignal,
  onStep: OnStep,
  streamed: boolean,
): Promise<GenerateResult[]> {
  // One signal for all of them: the request's, or the first failure's.
  const stop = new AbortController()
  const forward = () => stop.abort(signal.reason)
  if (signal.aborted) forward()
  signal.addEventListener('abort', forward, { once: true })
  let failure: { error: unknown } | undefined
  const run = (row: native.NativeGeneration, index: number) => {
    const choice = { index, prompt: Math.floor(index / n) }
    return drive(row, stop.signal, (step) => onStep(choice, step), streamed).catch((error: unknown) => {
      failure ??= { error }
      stop.abort(error)
      throw error
    })
  }
  // Settled, not merely rejected: a failed request has nothing left running when it answers.
  const settled = await Promise.allSettled(rows.map(run)).finally(() => signal.removeEventListener('abort', forward))
  if (failure) throw failure.error
  return settled.map((row) => (row as PromiseFulfilledResult<GenerateResult>).value)
}

/** Runs the started generations unstreamed: their results, and each one's steps. */
export async function runToEnd(rows: native.NativeGeneration[], n: number, signal: AbortSignal) {
  const steps: GenerateStep[][] = rows.map(() => [])
  const results = await runChoices(rows, n, signal, (choice, step) => void steps[choice.index].push(step), false)
  return { results, steps }
}
