// The options of `generate` / `stream`: Hugging Face's names in camelCase, their defaults (decided
// in the core, documented here), and the checks of JS types and names before they cross into
// Rust (which checks the values).
import type * as native from '../binding'
import { invalidArg } from './errors'

/** One generated token. */
export interface GenerateStep {
  id: number
  /**
   * Text that became safe to show with this token: it never ends inside a UTF-8 character or
   * with what may be the start of a stop string, so it can be empty. The deltas concatenate to
   * the completion.
   */
  text: string
  /** Probability of the token under the model (softmax of the raw logits, before processors). */
  p: number
  logprob: number
  /** With `topAlternatives: k`: the k most likely tokens at this step, from the same forward pass. */
  alternatives?: { id: number; token: string; p: number; logprob: number }[]
}

export type StopReason = 'eos' | 'length' | 'stop' | 'abort' | 'context'

export interface GenerateResult {
  /** Prompt + completion, as `tokenizer.decode(output[0])` (cut before a stop string). */
  text: string
  /** The generated text alone (cut before a stop string). */
  completion: string
  /** Prompt ids + new ids. */
  ids: number[]
  newIds: number[]
  /**
   * Why generation ended: `'eos'` (the eos token was generated; it is the last of `newIds`),
   * `'length'` (`maxNewTokens` / `maxLength`), `'stop'` (a stop string), `'abort'` (the
   * signal), `'context'` (the sequence filled `nPositions`).
   */
  stopReason: StopReason
  timings: {
    promptTokens: number
    /** The prompt's forward pass, which also yields the first new token. */
    promptMs: number
    generatedTokens: number
    /** The steps after the first new token: decode speed is (generatedTokens - 1) / generatedMs. */
    generatedMs: number
  }
}

/**
 * Options of `generate` and `stream`, named and defaulted as in transformers' `generate`. An
 * option left out takes the model's `generationConfig` (its `generation_config.json`), then
 * transformers' default.
 */
export interface GenerateOptions {
  /**
   * Most tokens in the output, prompt included (the notebook's `max_length=100`); a prompt that
   * long already is `ERR_INVALID_ARG`. Ignored when `maxNewTokens` is set. In `generateBatch`
   * it counts from the longest prompt, as transformers' left-padded batch does.
   * @default 20 new tokens (transformers adds its 20 to the prompt length), capped at nPositions
   */
  maxLength?: number
  /** Most new tokens, at least 1; wins over `maxLength`. Per row in `generateBatch`. */
  maxNewTokens?: number
  /** Generation ends after this token, or after any of a list. `null`: never. @default generationConfig.eosTokenId ([50256]) */
  eosTokenId?: number | number[] | null
  /**
   * transformers' padding token, accepted (and checked) for compatibility. Nothing is padded:
   * batched sequences each keep their own KV cache. @default generationConfig.padTokenId
   */
  padTokenId?: number
  /** Sample from the processed distribution instead of taking the argmax. @default false */
  doSample?: boolean
  /**
   * Divides the logits before sampling (< 1 sharper, > 1 flatter); above 0 when sampling (use
   * `doSample: false` for greedy). Sampling only, as are topK, topP and minP: ignored otherwise.
   * @default 1
   */
  temperature?: number
  /** Sample among the k most likely tokens; 0 turns it off. Sampling only. @default 50 */
  topK?: number
  /** Sample among the fewest tokens whose probabilities sum to topP, in (0, 1]. Sampling only. @default 1 */
  topP?: number
  /** Drop tokens less likely than minP times the most likely one, in [0, 1]. Sampling only. */
  minP?: number
  /** Seeds the sampler: the same seed gives the same tokens. @default a random seed */
  seed?: number
  /** > 1 discourages tokens already present (prompt included), as in transformers. @default 1 */
  repetitionPenalty?: number
  /** No n-gram of this size may appear twice; 0 turns it off. @default 0 */
  noRepeatNgramSize?: number
  /** Generation ends when the completion contains one of these; the result ends before it. */
  stop?: string | string[]
  /** Report the k most likely tokens at every step (`GenerateStep.alternatives`). @default 0 */
  topAlternatives?: number
  /** Aborting stops generation within one token; the call rejects with an `AbortError` holding the partial result. */
  signal?: AbortSignal
  /** Called with every token as it is generated. */
  onToken?: (step: GenerateStep) => void
}

/** Every option name, for telling a misspelt or snake_case name from a known one. */
const KNOWN = [
  'maxLength', 'maxNewTokens', 'eosTokenId', 'padTokenId', 'doSample', 'temperature', 'topK', 'topP', 'minP',
  'seed', 'repetitionPenalty', 'noRepeatNgramSize', 'stop', 'topAlternatives', 'signal', 'onToken',
] as const

/** An unknown option fails rather than being ignored (`max_new_tokens` would silently do nothing). */
function checkNames(options: object) {
  for (const name of Object.keys(options)) {
    if ((KNOWN as readonly string[]).includes(name)) continue
    const camel = name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())
    const guess = KNOWN.find((known) => known.toLowerCase() === camel.toLowerCase())
    throw invalidArg(`unknown option '${name}'${guess ? `: did you mean '${guess}'?` : ''}`)
  }
}

function optionalInteger(options: GenerateOptions, name: keyof GenerateOptions, max = 0xffffffff): number | undefined {
  const value = options[name]
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw invalidArg(`${name} must be a non-negative integer; got ${String(value)}`)
  }
  return value
}

function optionalNumber(options: GenerateOptions, name: keyof GenerateOptions): number | undefined {
  const value = options[name]
  if (value === undefined) return undefined
  if (typeof value !== 'number') throw invalidArg(`${name} must be a number; got ${String(value)}`)
  return value
}

/** `eosTokenId` as the core takes it: a list, empty for `null` (nothing ends the sequence). */
function eosList(eos: GenerateOptions['eosTokenId']): number[] | undefined {
  if (eos === undefined) return undefined
  const ids = eos === null ? [] : Array.isArray(eos) ? eos : [eos]
  if (!ids.every((id) => typeof id === 'number' && Number.isInteger(id) && id >= 0)) {
    throw invalidArg(`eosTokenId must be a token id, a list of them, or null; got ${String(eos)}`)
  }
  return ids
}

/** Checks JS types and names; what is left out stays out, for the core to default. */
export function toNativeOptions(options: GenerateOptions, paddedLength?: number): native.NativeGenerateOptions {
  if (options === null || typeof options !== 'object') throw invalidArg('options must be an object')
  checkNames(options)
  const stop = options.stop === undefined ? [] : Array.isArray(options.stop) ? options.stop : [options.stop]
  if (!stop.every((s) => typeof s === 'string')) throw invalidArg('stop must be a string or an array of strings')
  if (options.doSample !== undefined && typeof options.doSample !== 'boolean') throw invalidArg('doSample must be a boolean')
  if (options.onToken !== undefined && typeof options.onToken !== 'function') throw invalidArg('onToken must be a function')
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw invalidArg('signal must be an AbortSignal')
  return {
    maxLength: optionalInteger(options, 'maxLength'),
    maxNewTokens: optionalInteger(options, 'maxNewTokens'),
    eosTokenId: eosList(options.eosTokenId),
    padTokenId: optionalInteger(options, 'padTokenId'),
    doSample: options.doSample,
    temperature: optionalNumber(options, 'temperature'),
    topK: optionalInteger(options, 'topK'),
    topP: optionalNumber(options, 'topP'),
    minP: optionalNumber(options, 'minP'),
    seed: optionalInteger(options, 'seed', Number.MAX_SAFE_INTEGER),
    repetitionPenalty: optionalNumber(options, 'repetitionPenalty'),
    noRepeatNgramSize: optionalInteger(options, 'noRepeatNgramSize'),
    stop,
    topAlternatives: optionalInteger(options, 'topAlternatives'),
    paddedLength,
  }
}

export function toStep(step: native.GenerateStep): GenerateStep {
  const out: GenerateStep = { id: step.id, text: step.text, p: step.p, logprob: step.logprob }
  if (step.alternatives) out.alternatives = step.alternatives
  return out
}

export function toResult(output: native.GenerateOutput): GenerateResult {
  return {
    text: output.text,
    completion: output.completion,
    ids: output.ids,
    newIds: output.newIds,
    stopReason: output.stopReason ?? 'abort',
    timings: output.timings,
  }
}
