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
  /**
   * With `outputScores`: the token's log-probability under the processed distribution, the one it
   * was chosen from (after penalties, biases, temperature, top-k...), as transformers'
   * `compute_transition_scores(..., normalize_logits=True)` gives it.
   */
  score?: number
  /**
   * With `topAlternatives`: the k most likely tokens at this step, from the same forward pass,
   * under the model's distribution (as `p`), or the processed one with `processed: true`.
   */
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
  /** Beam search: the sequence's score (transformers' `sequences_scores`): its processed log-probability over its length^lengthPenalty. */
  sequenceScore?: number
  /**
   * With `outputScores`: each new token's `score`, in order, as transformers'
   * `compute_transition_scores(out.sequences, out.scores, normalize_logits=True)`.
   */
  scores?: number[]
  timings: {
    promptTokens: number
    /** Prompt tokens whose keys and values were reused from an earlier prompt (see `prefixCacheBytes`). */
    cachedPromptTokens: number
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
  /** eos cannot end the sequence while it is shorter than this, prompt included (in `generateBatch`, the padded prompt). @default 0 */
  minLength?: number
  /** eos cannot end the sequence before this many new tokens; wins over `minLength`. */
  minNewTokens?: number
  /**
   * Token sequences never to generate: the last token of each is banned right after the rest
   * (a one-token sequence always). A lone eos id is ignored, as in transformers.
   */
  badWordsIds?: number[][]
  /** `[[ids], bias]` pairs: the bias is added to the last token's logit right after the rest (a one-token sequence always). */
  sequenceBias?: Array<[number[], number]>
  /**
   * `{ [id]: bias }` added to those tokens' logits (OpenAI's and llama.cpp's `logit_bias`): the
   * one-token case of `sequenceBias` (a token in both takes this value). `-Infinity` bans a token.
   */
  logitBias?: Record<number, number>
  /** Tokens never generated. */
  suppressTokens?: number[]
  /** Tokens not generated as the first new token. */
  beginSuppressTokens?: number[]
  /** The last token the length allows is this one (or one of these). */
  forcedEosTokenId?: number | number[]
  /**
   * `[startIndex, decayFactor]`: once more than `startIndex` tokens are generated, each eos
   * token's logit grows by |logit| * (decayFactor^(new tokens - startIndex) - 1), so that a
   * sequence ends soon after without a hard cut (transformers' `exponential_decay_length_penalty`).
   * The factor must be finite.
   */
  exponentialDecayLengthPenalty?: [number, number]
  /** Locally typical sampling: keep the tokens whose surprisal is nearest the entropy, up to this mass, in (0, 1]. Sampling only. @default 1 */
  typicalP?: number
  /** Drop tokens less likely than this, in [0, 1) (3e-4 to 9e-4 in the paper). Sampling only. @default 0 */
  epsilonCutoff?: number
  /** Drop tokens less likely than min(etaCutoff, sqrt(etaCutoff) * e^-entropy), in [0, 1). Sampling only. @default 0 */
  etaCutoff?: number
  /** Log-softmax after every processor, so that processed scores are log-probabilities. @default false */
  renormalizeLogits?: boolean
  /**
   * Generation ends when the completion contains one of these; the result ends before it
   * (vLLM's and llama.cpp's `stop`). See `stopStrings` for transformers' meaning.
   */
  stop?: string | string[]
  /**
   * transformers' `stop_strings`: generation ends as soon as the whole text, prompt included,
   * contains one of these ending in the newest token (across token boundaries, even when the
   * token runs past the string's end). The result keeps it. `stopReason` is `'stop'`.
   */
  stopStrings?: string | string[]
  /**
   * Report the k most likely tokens at every step (`GenerateStep.alternatives`), under the
   * model's distribution, or with `{ k, processed: true }` under the processed one. @default 0
   */
  topAlternatives?: number | { k: number; processed?: boolean }
  /** Give each step's `score` and the result's `scores` (transformers' `output_scores`). @default false */
  outputScores?: boolean
  /**
   * Continue each prompt this many ways (sampling only, as in transformers): the prompt is read
   * once and its KV cache copied per continuation. With it, `generate` resolves with an array of
   * that many results, and `generateBatch` with the n results of each prompt together. With a
   * `seed`, continuation i is seeded from `seed` and i alone (the first exactly as a call with
   * that seed), so results do not depend on what runs beside them. At most 128, and prompts x
   * continuations at most 1024 in one call (docs/errors.md, Limits).
   * @default 1
   */
  numReturnSequences?: number
  /**
   * Beam search with this many beams when above 1 (greedy beams; not with `doSample`, `stream`,
   * `onToken`, `stop` or `stopStrings`), as transformers' beam search, token for token: each
   * result carries its `sequenceScore`. With `numReturnSequences` (at most `numBeams`), that many
   * of the best beams. At most 64, and prompts x beams at most 1024 in one call, within a
   * 16 GiB KV-cache estimate (docs/errors.md, Limits); a model's `generation_config.json` is held to the
   * same. @default 1
   */
  numBeams?: number
  /** Beam search: a finished sequence scores sum(logprobs) / newLength^lengthPenalty (> 0 favours longer ones). @default 1 */
  lengthPenalty?: number
  /**
   * Beam search: `true` stops once numBeams sequences have finished; `false` when no running beam
   * can beat the finished ones at its current length; `'never'` when none can at any length.
   * @default false
   */
  earlyStopping?: boolean | 'never'
  /** Aborting stops generation within one token; the call rejects with an `AbortError` holding the partial result. */
  signal?: AbortSignal
  /** Called with every token as it is generated. */
  onToken?: (step: GenerateStep) => void
}

/** An unknown option fails rather than being ignored (`max_new_tokens` would silently do nothing). */
function checkNames(options: object) {
  for (const name of Object.keys(options)) {
    if (Object.hasOwn(OPTIONS, name)) continue
    const camel = name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase())
    const guess = KNOWN.find((known) => known.toLowerCase() === camel.toLowerCase())
    throw invalidArg(`unknown option '${name}'${guess ? `: did you mean '${guess}'?` : ''}`)
  }
}

function integer(value: unknown, name: string, max = 0xffffffff): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw invalidArg(`${name} must be a non-negative integer; got ${String(value)}`)
  }
  return value
}

function number(value: unknown, name: string): number {
  if (typeof value !== 'number') throw invalidArg(`${name} must be a number; got ${String(value)}`)
  return value
}

function boolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw invalidArg(`${name} must be a boolean; got ${String(value)}`)
  return value
}

const isTokenId = (id: unknown): id is number =>
  typeof id === 'number' && Number.isInteger(id) && id >= 0 && id <= 0xffffffff

/** A list of token ids, checked. */
function tokenIds(value: unknown, name: string): number[] {
  if (!Array.isArray(value) || !value.every(isTokenId))
    throw invalidArg(`${name} must be a list of token ids; got ${String(value)}`)
  return value
}

/** An id or a list of them, as a list. */
function oneOrMany(value: unknown, name: string): number[] {
  return Array.isArray(value) ? tokenIds(value, name) : tokenIds([value], name)
}

/** An id or a list of them, as a list; `null` (none) as `[]`. */
function oneOrManyOrNone(value: unknown, name: string): number[] {
  return value === null ? [] : oneOrMany(value, name)
}

function tokenSequences(value: unknown, name: string): number[][] {
  if (!Array.isArray(value)) throw invalidArg(`${name} must be a list of lists of token ids`)
  return value.map((ids) => tokenIds(ids, name))
}

function strings(value: unknown, name: string): string[] {
  const list = Array.isArray(value) ? value : [value]
  if (!list.every((s) => typeof s === 'string')) throw invalidArg(`${name} must be a string or an array of strings`)
  // A lone surrogate would become U+FFFD in Rust and match an unrelated character.
  const lone = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
  if (list.some((s) => lone.test(s)))
    throw invalidArg(`${name} must be well-formed Unicode: a string holds a lone surrogate`)
  return list
}

function sequenceBias(value: unknown): Array<[number[], number]> {
  const pair = (p: unknown) =>
    Array.isArray(p) && p.length === 2 && Array.isArray(p[0]) && p[0].every(isTokenId) && typeof p[1] === 'number'
  if (!Array.isArray(value) || !value.every(pair))
    throw invalidArg('sequenceBias must be a list of [[token ids], bias] pairs')
  return value
}

/** `{ [id]: bias }` as `[id, bias]` entries. */
function logitBias(value: unknown): Array<[number, number]> {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw invalidArg('logitBias must be an object of { [tokenId]: bias }')
  return Object.entries(value).map(([key, bias]) => {
    const id = Number(key)
    if (!isTokenId(id) || String(id) !== key) throw invalidArg(`logitBias: '${key}' is not a token id`)
    if (typeof bias !== 'number') throw invalidArg(`logitBias: the bias of ${key} must be a number`)
    return [id, bias]
  })
}

function decay(value: unknown, name: string): [number, number] {
  if (!Array.isArray(value) || value.length !== 2)
    throw invalidArg(`${name} must be [startIndex, decayFactor]; got ${String(value)}`)
  return [integer(value[0], `${name}'s startIndex`), number(value[1], `${name}'s decayFactor`)]
}

function earlyStopping(value: unknown): boolean | 'never' {
  if (typeof value === 'boolean' || value === 'never') return value
  throw invalidArg(`earlyStopping must be true, false or 'never'; got ${String(value)}`)
}

/**
 * What `generate` uses for every option a call leaves out: the model directory's
 * `generation_config.json` (else `config.json`'s special tokens) over transformers' defaults.
 */
export interface GenerationConfig {
  /** `null`: 20 new tokens after the prompt (transformers' default), capped at nPositions. */
  maxLength: number | null
  maxNewTokens: number | null
  doSample: boolean
  temperature: number
  topK: number
  topP: number
  minP: number | null
  repetitionPenalty: number
  noRepeatNgramSize: number
  /** Any of these ends a sequence. */
  eosTokenId: number[]
  padTokenId: number | null
  /** Where generation from an empty input starts. */
  bosTokenId: number | null
  minLength: number
  minNewTokens: number | null
  badWordsIds: number[][]
  sequenceBias: Array<[number[], number]>
  suppressTokens: number[]
  beginSuppressTokens: number[]
  forcedEosTokenId: number[]
  exponentialDecayLengthPenalty: [number, number] | null
  typicalP: number
  epsilonCutoff: number
  etaCutoff: number
  renormalizeLogits: boolean
  stopStrings: string[]
  numReturnSequences: number
  /** Above 1: `generate` runs beam search. */
  numBeams: number
  lengthPenalty: number
  earlyStopping: boolean | 'never'
}

/** How one option crosses into Rust: its JS type checked, as the native options it sets. */
type Conversion = (value: unknown, name: string) => Record<string, unknown>

/** An option sent under its own name, once `check` has checked (and normalized) its value. */
const as =
  (check: (value: unknown, name: string) => unknown): Conversion =>
  (value, name) => ({ [name]: check(value, name) })

/** An option JS alone acts on: checked, nothing sent. */
const jsOnly =
  (check: (value: unknown) => boolean, expected: string): Conversion =>
  (value, name) => {
    if (!check(value)) throw invalidArg(`${name} must be ${expected}`)
    return {}
  }

/** `topAlternatives` as k and whether they rank the processed distribution. */
function alternatives(value: unknown, name: string): Record<string, unknown> {
  if (typeof value === 'number') return { topAlternatives: integer(value, name) }
  if (value === null || typeof value !== 'object') throw invalidArg(`${name} must be a number or { k, processed }`)
  const { k, processed } = value as { k?: unknown; processed?: unknown }
  if (k === undefined) throw invalidArg(`${name} needs k`)
  if (processed !== undefined && typeof processed !== 'boolean') throw invalidArg(`${name}.processed must be a boolean`)
  return { topAlternatives: integer(k, name), processedAlternatives: processed }
}

/**
 * Every option, as it crosses into Rust: the one record of the names JS knows (a record over the
 * interface's keys, so that the compiler refuses to let the two drift apart) and of each one's
 * conversion. The names sent are the core's option table's (`crates/nexttoken/src/generation/
 * options/mod.rs`), which checks the values.
 */
const OPTIONS: Record<keyof GenerateOptions, Conversion> = {
  maxLength: as(integer),
  maxNewTokens: as(integer),
  eosTokenId: as(oneOrManyOrNone),
  padTokenId: as(integer),
  doSample: as(boolean),
  temperature: as(number),
  topK: as(integer),
  topP: as(number),
  minP: as(number),
  seed: as((value, name) => integer(value, name, Number.MAX_SAFE_INTEGER)),
  repetitionPenalty: as(number),
  noRepeatNgramSize: as(integer),
  minLength: as(integer),
  minNewTokens: as(integer),
  badWordsIds: as(tokenSequences),
  sequenceBias: as(sequenceBias),
  logitBias: as(logitBias),
  suppressTokens: as(tokenIds),
  beginSuppressTokens: as(tokenIds),
  forcedEosTokenId: as(oneOrMany),
  exponentialDecayLengthPenalty: as(decay),
  typicalP: as(number),
  epsilonCutoff: as(number),
  etaCutoff: as(number),
  renormalizeLogits: as(boolean),
  stop: as(strings),
  stopStrings: as(strings),
  topAlternatives: alternatives,
  outputScores: as(boolean),
  numReturnSequences: as(integer),
  numBeams: as(integer),
  lengthPenalty: as(number),
  earlyStopping: as(earlyStopping),
  signal: jsOnly((value) => value instanceof AbortSignal, 'an AbortSignal'),
  onToken: jsOnly((value) => typeof value === 'function', 'a function'),
}
const KNOWN = Object.keys(OPTIONS)

/** Checks JS types and names; what is left out stays out, for the core to default. */
export function toNativeOptions(
  options: GenerateOptions,
  paddedLength?: number,
  sequenceIndex?: number,
): Record<string, unknown> {
  if (options === null || typeof options !== 'object') throw invalidArg('options must be an object')
  checkNames(options)
  const native: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(options)) {
    if (value !== undefined) Object.assign(native, OPTIONS[name as keyof GenerateOptions](value, name))
  }
  if (paddedLength !== undefined) native.paddedLength = paddedLength
  if (sequenceIndex !== undefined) native.sequenceIndex = sequenceIndex
  return native
}

export function toStep(step: native.GenerateStep): GenerateStep {
  const out: GenerateStep = { id: step.id, text: step.text, p: step.p, logprob: step.logprob }
  if (step.score !== undefined && step.score !== null) out.score = step.score
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
    ...(output.scores ? { scores: output.scores } : {}),
    ...(output.sequenceScore !== undefined && output.sequenceScore !== null
      ? { sequenceScore: output.sequenceScore }
      : {}),
    timings: output.timings,
  }
}
