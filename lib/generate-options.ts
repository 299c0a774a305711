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
   * continuations at most 1024 in one call (README, Limits).
   * @default 1
   */
  numReturnSequences?: number
  /**
   * Beam search with this many beams when above 1 (greedy beams; not with `doSample`, `stream`,
   * `onToken`, `stop` or `stopStrings`), as transformers' beam search, token for token: each
   * result carries its `sequenceScore`. With `numReturnSequences` (at most `numBeams`), that many
   * of the best beams. At most 64, and prompts x beams at most 1024 in one call, within a
   * 16 GiB KV-cache estimate (README, Limits); a model's `generation_config.json` is held to the
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

/**
 * Every option name, for telling a misspelt or snake_case name from a known one. A record over
 * the interface's keys, so that the compiler refuses to let the two drift apart.
 */
const KNOWN_OPTIONS: Record<keyof GenerateOptions, true> = {
  maxLength: true,
  maxNewTokens: true,
  eosTokenId: true,
  padTokenId: true,
  doSample: true,
  temperature: true,
  topK: true,
  topP: true,
  minP: true,
  seed: true,
  repetitionPenalty: true,
  noRepeatNgramSize: true,
  minLength: true,
  minNewTokens: true,
  badWordsIds: true,
  sequenceBias: true,
  logitBias: true,
  suppressTokens: true,
  beginSuppressTokens: true,
  forcedEosTokenId: true,
  typicalP: true,
  epsilonCutoff: true,
  etaCutoff: true,
  renormalizeLogits: true,
  stop: true,
  stopStrings: true,
  topAlternatives: true,
  outputScores: true,
  numReturnSequences: true,
  numBeams: true,
  lengthPenalty: true,
  earlyStopping: true,
  signal: true,
  onToken: true,
}
const KNOWN = Object.keys(KNOWN_OPTIONS)

/** An unknown option fails rather than being ignored (`max_new_tokens` would silently do nothing). */
function checkNames(options: object) {
  for (const name of Object.keys(options)) {
    if (KNOWN.includes(name)) continue
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

function optionalBoolean(options: GenerateOptions, name: keyof GenerateOptions): boolean | undefined {
  const value = options[name]
  if (value !== undefined && typeof value !== 'boolean')
    throw invalidArg(`${name} must be a boolean; got ${String(value)}`)
  return value
}

const isTokenId = (id: unknown): id is number =>
  typeof id === 'number' && Number.isInteger(id) && id >= 0 && id <= 0xffffffff

/** A list of token ids, checked. */
function tokenIds(name: string, value: unknown): number[] {
  if (!Array.isArray(value) || !value.every(isTokenId))
    throw invalidArg(`${name} must be a list of token ids; got ${String(value)}`)
  return value
}

/** An id or a list of them, as a list; `null` (where allowed) as `[]`. */
function oneOrMany(name: string, value: number | number[] | null | undefined): number[] | undefined {
  if (value === undefined) return undefined
  if (value === null) return []
  return Array.isArray(value) ? tokenIds(name, value) : tokenIds(name, [value])
}

function strings(name: string, value: string | string[] | undefined): string[] | undefined {
  if (value === undefined) return undefined
  const list = Array.isArray(value) ? value : [value]
  if (!list.every((s) => typeof s === 'string')) throw invalidArg(`${name} must be a string or an array of strings`)
  // A lone surrogate would become U+FFFD in Rust and match an unrelated character.
  const lone = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
  if (list.some((s) => lone.test(s)))
    throw invalidArg(`${name} must be well-formed Unicode: a string holds a lone surrogate`)
  return list
}

function sequenceBias(value: GenerateOptions['sequenceBias']): Array<[number[], number]> | undefined {
  if (value === undefined) return undefined
  const pair = (p: unknown) =>
    Array.isArray(p) && p.length === 2 && Array.isArray(p[0]) && p[0].every(isTokenId) && typeof p[1] === 'number'
  if (!Array.isArray(value) || !value.every(pair))
    throw invalidArg('sequenceBias must be a list of [[token ids], bias] pairs')
  return value
}

/** `{ [id]: bias }` as `[id, bias]` entries. */
function logitBias(value: GenerateOptions['logitBias']): Array<[number, number]> | undefined {
  if (value === undefined) return undefined
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw invalidArg('logitBias must be an object of { [tokenId]: bias }')
  return Object.entries(value).map(([key, bias]) => {
    const id = Number(key)
    if (!isTokenId(id) || String(id) !== key) throw invalidArg(`logitBias: '${key}' is not a token id`)
    if (typeof bias !== 'number') throw invalidArg(`logitBias: the bias of ${key} must be a number`)
    return [id, bias]
  })
}

function earlyStopping(value: GenerateOptions['earlyStopping']): boolean | 'never' | undefined {
  if (value === undefined || typeof value === 'boolean' || value === 'never') return value
  throw invalidArg(`earlyStopping must be true, false or 'never'; got ${String(value)}`)
}

/** `topAlternatives` as k and whether they rank the processed distribution. */
function alternatives(value: GenerateOptions['topAlternatives']): { k?: number; processed?: boolean } {
  if (value === undefined || typeof value === 'number')
    return { k: optionalInteger({ topAlternatives: value }, 'topAlternatives') }
  if (value === null || typeof value !== 'object')
    throw invalidArg('topAlternatives must be a number or { k, processed }')
  const k = optionalInteger({ topAlternatives: value.k }, 'topAlternatives')
  if (k === undefined) throw invalidArg('topAlternatives needs k')
  if (value.processed !== undefined && typeof value.processed !== 'boolean')
    throw invalidArg('topAlternatives.processed must be a boolean')
  return { k, processed: value.processed }
}

/** Checks JS types and names; what is left out stays out, for the core to default. */
export function toNativeOptions(
  options: GenerateOptions,
  paddedLength?: number,
  sequenceIndex?: number,
): native.NativeGenerateOptions {
  if (options === null || typeof options !== 'object') throw invalidArg('options must be an object')
  checkNames(options)
  if (options.onToken !== undefined && typeof options.onToken !== 'function')
    throw invalidArg('onToken must be a function')
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal))
    throw invalidArg('signal must be an AbortSignal')
  const { k: topAlternatives, processed: processedAlternatives } = alternatives(options.topAlternatives)
  const badWordsIds = options.badWordsIds
  if (badWordsIds !== undefined && !Array.isArray(badWordsIds))
    throw invalidArg('badWordsIds must be a list of lists of token ids')
  return {
    maxLength: optionalInteger(options, 'maxLength'),
    maxNewTokens: optionalInteger(options, 'maxNewTokens'),
    eosTokenId: oneOrMany('eosTokenId', options.eosTokenId),
    padTokenId: optionalInteger(options, 'padTokenId'),
    doSample: optionalBoolean(options, 'doSample'),
    temperature: optionalNumber(options, 'temperature'),
    topK: optionalInteger(options, 'topK'),
    topP: optionalNumber(options, 'topP'),
    minP: optionalNumber(options, 'minP'),
    seed: optionalInteger(options, 'seed', Number.MAX_SAFE_INTEGER),
    repetitionPenalty: optionalNumber(options, 'repetitionPenalty'),
    noRepeatNgramSize: optionalInteger(options, 'noRepeatNgramSize'),
    minLength: optionalInteger(options, 'minLength'),
    minNewTokens: optionalInteger(options, 'minNewTokens'),
    badWordsIds: badWordsIds?.map((ids) => tokenIds('badWordsIds', ids)),
    sequenceBias: sequenceBias(options.sequenceBias),
    logitBias: logitBias(options.logitBias),
    suppressTokens:
      options.suppressTokens === undefined ? undefined : tokenIds('suppressTokens', options.suppressTokens),
    beginSuppressTokens:
      options.beginSuppressTokens === undefined
        ? undefined
        : tokenIds('beginSuppressTokens', options.beginSuppressTokens),
    forcedEosTokenId: oneOrMany('forcedEosTokenId', options.forcedEosTokenId),
    typicalP: optionalNumber(options, 'typicalP'),
    epsilonCutoff: optionalNumber(options, 'epsilonCutoff'),
    etaCutoff: optionalNumber(options, 'etaCutoff'),
    renormalizeLogits: optionalBoolean(options, 'renormalizeLogits'),
    stop: strings('stop', options.stop),
    stopStrings: strings('stopStrings', options.stopStrings),
    topAlternatives,
    processedAlternatives,
    outputScores: optionalBoolean(options, 'outputScores'),
    numReturnSequences: optionalInteger(options, 'numReturnSequences'),
    numBeams: optionalInteger(options, 'numBeams'),
    lengthPenalty: optionalNumber(options, 'lengthPenalty'),
    earlyStopping: earlyStopping(options.earlyStopping),
    sequenceIndex,
    paddedLength,
  }
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
