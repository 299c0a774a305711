// The model: load a GPT-2 directory, score next tokens, generate.
import type * as binding from '../binding'
import { onDevice } from './devices'
import { callNative, callNativeAsync, checkOptionsObject, invalidArg } from './errors'
import {
  type GenerateOptions,
  type GenerateResult,
  type GenerateStep,
  type GenerationConfig,
  toNativeOptions,
} from './generate-options'
import { resolvePretrained } from './hub/index'
import { type Device, type Dtype, type LoadOptions, toNativeLoadOptions } from './load-options'
import { oneSequence, type TokenProbability } from './next-token'
import { Session } from './session'
import * as generation from './generation'
import { type GenerationLimits, toNativeLimits } from './limits'
import { type ModelInput, Tokenizer } from './tokenizer'

/**
 * Texts longer than this (UTF-16 code units) are tokenized on a task thread: GPT-2's tokenizer
 * takes about 0.4 µs a byte here, so what runs on the JS thread stays under ~2 ms, while short
 * prompts skip the thread hop.
 */
const TOKENIZE_ON_JS_THREAD = 4096

/** `config.json` of the loaded model, in camelCase. */
export interface Gpt2Config {
  modelType: 'gpt2'
  nLayer: number
  nHead: number
  nEmbd: number
  /** Width of the MLP's hidden layer (4 * nEmbd unless the config says otherwise). */
  nInner: number
  /** The context limit: inputs longer than this fail with `ERR_CONTEXT_OVERFLOW`. */
  nPositions: number
  vocabSize: number
  layerNormEpsilon: number
  bosTokenId: number | null
  eosTokenId: number | null
}

export interface LogitsOptions {
  /**
   * `'last'`: the logits predicting the next token, `[vocabSize]`. `'all'`: one row per input
   * position, `[tokens * vocabSize]` row-major, as `model(ids).logits[0]` in transformers.
   * @default 'last'
   */
  positions?: 'last' | 'all'
}

/** One token of a scored text (`model.score`). */
export interface ScoredToken {
  id: number
  /** The token's text, `tokenizer.decode([id])`. */
  token: string
  /** log p(token | the tokens before it); `null` for the first token, which has no context. */
  logprob: number | null
  /** With `topK`: the most likely tokens at this position (none for the first). */
  alternatives?: TokenProbability[]
}

/** How likely a text is under the model (`model.score`). */
export interface ScoredText {
  tokens: ScoredToken[]
  /** The sum of the tokens' log-probabilities (the log-probability of the text after its first token). */
  logprob: number
  /** transformers' `model(ids, labels=ids).loss`: the mean negative log-likelihood per predicted token. */
  loss: number
  /** `exp(loss)`. */
  perplexity: number
}

export interface ScoreOptions {
  /** Also list the k most likely tokens at each position. @default 0 */
  topK?: number
}

/** A GPT-2 family model (gpt2, distilgpt2, gpt2-medium/large/xl) with its tokenizer. */
export class Gpt2 {
  /** The tokenizer loaded from the same directory. */
  readonly tokenizer: Tokenizer
  readonly config: Gpt2Config
  readonly generationConfig: GenerationConfig
  /**
   * What the weights are held in: `options.dtype`, or the checkpoint's own type (for a GGUF file
   * whose matrices differ in type, the token embeddings' type).
   */
  readonly dtype: Dtype
  /** Where the model runs: `options.device`, or for `'auto'` the device it picked. */
  readonly device: Device

  /** @internal */
  private constructor(private readonly native: binding.NativeGpt2) {
    this.tokenizer = new Tokenizer(native.tokenizer)
    this.dtype = native.dtype as Dtype
    this.device = native.device as Device
    const config = native.config
    // The core's resolved defaults, named by its option table (unset ones as null).
    this.generationConfig = native.generationConfig as unknown as GenerationConfig
    this.config = {
      ...config,
      modelType: 'gpt2',
      bosTokenId: config.bosTokenId ?? null,
      eosTokenId: config.eosTokenId ?? null,
    }
  }

  /**
   * Loads a model: a Hub repo id (`'gpt2'`, `'openai-community/gpt2-medium'`), found in or
   * downloaded to the Hugging Face cache that Python uses too, or a local directory in the Hub's
   * layout: `config.json`; `model.safetensors` (or its shards, or `pytorch_model.bin`; f32, f16
   * or bf16, held in `options.dtype`, computed in f32); `tokenizer.json` (or `vocab.json` + `merges.txt`); optionally
   * `generation_config.json`. Or a GGUF file of architecture `gpt2` (llama.cpp's format: F32,
   * F16, BF16, Q8_0 or Q4_0 tensors; config and tokenizer from its metadata), by its path or as
   * the only `.gguf` file of a directory without Hugging Face weights (which win when both are
   * there); its matrices are held in their own types unless `options.dtype` says otherwise.
   */
  static async fromPretrained(nameOrPath: string, options: LoadOptions = {}): Promise<Gpt2> {
    if (typeof nameOrPath !== 'string') throw invalidArg('nameOrPath must be a string')
    checkOptionsObject(options)
    const { device, dtype, packedCacheDir, scheduler } = toNativeLoadOptions(options)
    const dir = await resolvePretrained(nameOrPath, options, 'model')
    const loaded = await onDevice(device, (addon, on) =>
      callNativeAsync(() => addon.loadGpt2(dir, on, dtype, packedCacheDir, scheduler)),
    )
    return new Gpt2(loaded)
  }

  /** Raw logits (pre-softmax scores) for the input, computed in f32. */
  async logits(input: ModelInput, options: LogitsOptions = {}): Promise<Float32Array> {
    checkOptionsObject(options)
    const positions = options.positions === undefined ? 'last' : options.positions
    if (positions !== 'last' && positions !== 'all') throw invalidArg("positions must be 'last' or 'all'")
    const found = this.toIds(input)
    const ids = found instanceof Uint32Array ? found : await found
    return callNativeAsync(() => this.native.logits(ids, positions === 'all'))
  }

  /** The next-token distribution: softmax of the last position's logits, `[vocabSize]`. */
  async probabilities(input: ModelInput): Promise<Float32Array> {
    const found = this.toIds(input)
    const ids = found instanceof Uint32Array ? found : await found
    return callNativeAsync(() => this.native.probabilities(ids))
  }

  /** The `k` most likely next tokens, most likely first (the notebook's top-5 table). */
  async topK(input: ModelInput, k = 5): Promise<TokenProbability[]> {
    if (!Number.isInteger(k) || k < 1) throw invalidArg(`k must be a positive integer; got ${String(k)}`)
    const found = this.toIds(input)
    const ids = found instanceof Uint32Array ? found : await found
    return callNativeAsync(() => this.native.topK(ids, Math.min(k, this.config.vocabSize)))
  }

  /**
   * How likely `input` is: each token's log-probability given the tokens before it, their sum,
   * the loss (mean negative log-likelihood, as transformers' `model(ids, labels=ids).loss`) and
   * the perplexity; with `topK`, the most likely tokens at each position. Computed natively in one
   * forward pass (no `tokens x vocabSize` array reaches JS). Needs at least two tokens.
   */
  async score(input: ModelInput, options: ScoreOptions = {}): Promise<ScoredText> {
    if (options === null || typeof options !== 'object') throw invalidArg('options must be an object')
    const k = options.topK ?? 0
    if (!Number.isInteger(k) || k < 0) throw invalidArg(`topK must be a non-negative integer; got ${String(k)}`)
    const found = this.toIds(input)
    const ids = found instanceof Uint32Array ? found : await found
    const scored = await callNativeAsync(() => this.native.score(ids, Math.min(k, this.config.vocabSize)))
    return {
      ...scored,
      tokens: scored.tokens.map((t) => ({
        id: t.id,
        token: t.token,
        logprob: t.logprob ?? null,
        ...(t.alternatives ? { alternatives: t.alternatives } : {}),
      })),
    }
  }

  /** The greedy choice: the single most likely next token. */
  async nextToken(input: ModelInput): Promise<TokenProbability> {
    const [best] = await this.topK(input, 1)
    return best
  }

  /**
   * Continues `input` token by token with a KV cache, as transformers' `generate`: greedy by
   * default, sampling with `doSample`. Resolves when generation ends (see `stopReason`); an
   * aborted `signal` rejects with an `AbortError` whose `partial` is the result so far.
   */
  async generate(
    input: ModelInput,
    options?: GenerateOptions & { numReturnSequences?: undefined },
  ): Promise<GenerateResult>
  async generate(
    input: ModelInput,
    options: GenerateOptions & { numReturnSequences: number },
  ): Promise<GenerateResult[]>
  async generate(input: ModelInput, options: GenerateOptions = {}): Promise<GenerateResult | GenerateResult[]> {
    return this.generateWithin(input, options, undefined)
  }

  /**
   * `generate` held to `limits` as well as to the library's caps; `progress`, if given, sees each
   * token where the call has one sequence (not beam search, not several continuations).
   * @internal (for the queue worker's `limits` and progress)
   */
  async generateWithin(
    input: ModelInput,
    options: GenerateOptions,
    limits: GenerationLimits | undefined,
    progress?: (step: GenerateStep) => void,
  ): Promise<GenerateResult | GenerateResult[]> {
    // Tokenized now, so that a short input starts before the call returns (as a dispose() right
    // after it finds it running).
    const found = this.toIds(input, limits)
    const ids = found instanceof Uint32Array ? found : await found
    const call = generation.startCall(this.native, [ids], options, false, toNativeLimits(limits))
    const several = options.numReturnSequences !== undefined
    if (several || call.isBeamSearch) {
      const results = await generation.results(call, options)
      return several ? results : results[0]
    }
    const onToken = progress ?? options.onToken
    return generation.generate(generation.onlyGeneration(call), { ...options, onToken })
  }

  /**
   * `generate`, one token at a time: `for await (const step of model.stream(text)) step.text`.
   * The iterator's return value is the `GenerateResult`; breaking out of the loop stops
   * generation. An aborted `signal` makes the iterator throw an `AbortError`.
   */
  stream(input: ModelInput, options: GenerateOptions = {}): AsyncGenerator<GenerateStep, GenerateResult, undefined> {
    oneSequence(options)
    // What a stream cannot read (beams, from the call or the model's defaults) fails here, as
    // the core decides it, before the input is tokenized; options that are wrong in themselves
    // and a disposed model fail at the first next(), as everything else that refuses the start.
    const nativeOptions = (() => {
      try {
        return toNativeOptions(options)
      } catch {
        return undefined
      }
    })()
    if (nativeOptions && !this.native.disposed) callNative(() => this.native.checkStream(nativeOptions))
    // Whatever refuses the input (ERR_DISPOSED too) is the first next()'s, as the start's is.
    let ids: Uint32Array | Promise<Uint32Array>
    try {
      ids = this.toIds(input)
    } catch (err) {
      ids = Promise.reject(err)
    }
    if (ids instanceof Promise) ids.catch(() => {}) // never an unhandled rejection
    return this.streamIds(ids, options)
  }

  private async *streamIds(ids: Uint32Array | Promise<Uint32Array>, options: GenerateOptions) {
    const call = generation.startCall(this.native, [await ids], options, true)
    return yield* generation.stream(generation.onlyGeneration(call), options)
  }

  /**
   * Starts `generate` on each prompt (and each of its continuations) without driving it: the
   * generations in the core's order (prompt by prompt, a prompt's continuations together), for a
   * caller that reads every step of several at once. Not beam search.
   * @internal (for the server)
   */
  startGenerations(prompts: Uint32Array[], options: GenerateOptions): binding.NativeGeneration[] {
    const call = generation.startCall(this.native, prompts, { ...options, numBeams: 1 }, false)
    return callNative(() => call.generations())
  }

  /**
   * `generate` for many inputs at once, decoded together in shared forward passes (up to
   * `maxBatchSize` at a time). Each row stops on its own (eos, stop strings, lengths) and its
   * greedy result is token for token that of `generate` on its input alone. Results come in
   * input order. The rows succeed or fail together: if one fails (`ERR_OVERLOADED` when they do
   * not fit in `maxQueueLength`, say) the others are cancelled. `onToken` is not taken here: use
   * `stream` per input for that.
   */
  async generateBatch(inputs: ModelInput[], options: Omit<GenerateOptions, 'onToken'> = {}): Promise<GenerateResult[]> {
    if (!Array.isArray(inputs)) throw invalidArg('generateBatch expects an array of inputs')
    checkOptionsObject(options)
    // Array.from visits holes too: a sparse array's missing row is an error, not a skipped one.
    const ids: Uint32Array[] = []
    for (const [i, input] of Array.from(inputs).entries()) {
      if (input === undefined) throw invalidArg(`generateBatch: input ${i} is missing`)
      const found = this.toIds(input)
      ids.push(found instanceof Uint32Array ? found : await found)
    }
    return generation.results(generation.startCall(this.native, ids, options, false), options)
  }

  /**
   * A session: a text kept with its KV cache, so that appending a token costs one position (the
   * notebook's step 3 without re-reading the text). `input`, if given, is appended first. A
   * session keeps the model's weights alive until it is disposed; it takes no batch slot.
   */
  async session(input?: ModelInput): Promise<Session> {
    const session = new Session(
      callNative(() => this.native.session()),
      this.tokenizer,
    )
    if (input !== undefined) await session.append(input)
    return session
  }

  /**
   * Most generations decoded together in one forward pass (`LoadOptions.maxBatchSize`, or the
   * core's default of 16); more wait for a free slot.
   */
  get maxBatchSize(): number {
    return callNative(() => this.native.maxBatchSize)
  }

  /**
   * Token ids of a model input. A text is refused by its length before it is tokenized (past what
   * the context can hold: `ERR_CONTEXT_OVERFLOW`; past `limits`: `ERR_INVALID_ARG`), and a long
   * one is tokenized on a task thread rather than the JS thread (a promise then; the ids
   * themselves otherwise, so that a call on a short input starts before it returns).
   * @internal
   */
  toIds(input: ModelInput, limits?: GenerationLimits): Uint32Array | Promise<Uint32Array> {
    const nativeLimits = toNativeLimits(limits)
    if (typeof input !== 'string') {
      const ids = this.tokenizer.toIds(input)
      callNative(() => this.native.checkInput(ids.length, false, nativeLimits))
      return ids
    }
    // A text's UTF-16 length is at most its UTF-8 length, so this refuses nothing that fits.
    callNative(() => this.native.checkInput(input.length, true, nativeLimits))
    if (input.length <= TOKENIZE_ON_JS_THREAD) return this.tokenizer.encode(input)
    return callNativeAsync(() => this.native.encodeInput(input))
  }

  /** True once `dispose()` has been called. */
  get disposed(): boolean {
    return this.native.disposed
  }

  /**
   * Frees the weights. Calls already running finish; later calls reject with `ERR_DISPOSED`.
   * Calling it again does nothing.
   */
  async dispose(): Promise<void> {
    this.native.dispose()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose()
  }
}
