// A text the model has read, kept with its KV cache: appending a token costs one position
// instead of re-reading the whole text. Calls on one session run one after another, in order.
import type * as binding from '../binding'
import { callNative, callNativeAsync, invalidArg } from './errors'
import type { GenerateOptions, GenerateResult, GenerateStep } from './generate-options'
import * as generation from './generation'
import { oneSequence, type TokenProbability } from './next-token'
import type { ModelInput, Tokenizer } from './tokenizer'

export class Session {
  /** Each call waits for the previous one: appends apply in the order they were made. */
  private queue: Promise<unknown> = Promise.resolve()

  /** @internal */
  constructor(
    private readonly native: binding.NativeSession,
    private readonly tokenizer: Tokenizer,
  ) {}

  private enqueue<T>(work: () => Promise<T>): Promise<T> {
    const result = this.queue.then(work)
    this.queue = result.catch(() => {})
    return result
  }

  /** The token ids of the text so far. */
  get ids(): number[] {
    return [...callNative(() => this.native.ids)]
  }

  /** The text so far, decoded. */
  get text(): string {
    return this.tokenizer.decode(this.ids)
  }

  /**
   * Positions this session has run through the model: one per appended token (plus one after a
   * `truncate`, to recompute the last position). Reading the logits or the top-k again adds none.
   */
  get positionsComputed(): number {
    return callNative(() => this.native.positionsComputed)
  }

  get disposed(): boolean {
    return this.native.disposed
  }

  /** Reads `input` after the text: only the new tokens go through the model. On error the session is unchanged. */
  append(input: ModelInput): Promise<void> {
    const ids = this.tokenizer.toIds(input)
    return this.enqueue(() => callNativeAsync(() => this.native.append(ids)))
  }

  /** Raw logits for the token after the text, `[vocabSize]`. */
  logits(): Promise<Float32Array> {
    return this.enqueue(() => callNativeAsync(() => this.native.logits()))
  }

  /** The next-token distribution after the text. */
  probabilities(): Promise<Float32Array> {
    return this.enqueue(() => callNativeAsync(() => this.native.probabilities()))
  }

  /** The `k` most likely next tokens, best first. */
  topK(k = 5): Promise<TokenProbability[]> {
    if (!Number.isInteger(k) || k < 1) throw invalidArg(`k must be a positive integer; got ${String(k)}`)
    return this.enqueue(() => callNativeAsync(() => this.native.topK(k)))
  }

  /** The greedy choice after the text. */
  async nextToken(): Promise<TokenProbability> {
    const [best] = await this.topK(1)
    return best
  }

  /**
   * An independent session with the same text. It copies the KV cache of the positions held
   * (2 x nLayer x tokens x nEmbd floats: 37 MB for 512 tokens of gpt2), so that neither sees the
   * other's appends.
   */
  fork(): Promise<Session> {
    return this.enqueue(async () => new Session(await callNativeAsync(() => this.native.fork()), this.tokenizer))
  }

  /** Keeps the first `length` tokens. */
  truncate(length: number): Promise<void> {
    if (!Number.isInteger(length) || length < 0)
      throw invalidArg(`length must be a non-negative integer; got ${String(length)}`)
    return this.enqueue(async () => callNative(() => this.native.truncate(length)))
  }

  /**
   * `generate` from the text so far, without reading it again; the session then holds the
   * generated tokens too (they are appended, one forward pass for all of them). Joins the
   * model's batches like any other generation.
   */
  generate(options: GenerateOptions = {}): Promise<GenerateResult> {
    oneSequence(options)
    return this.enqueue(async () => {
      const result = await generation.generate(generation.fromSession(this.starter(), options), options)
      await this.appendGenerated(result)
      return result
    })
  }

  /**
   * `stream` from the text so far; the session then holds the generated tokens too. It takes its
   * turn among the session's calls when iteration starts. An aborted or abandoned stream leaves
   * the session as it was.
   */
  stream(options: GenerateOptions = {}): AsyncGenerator<GenerateStep, GenerateResult, undefined> {
    oneSequence(options)
    const session = this
    return (async function* () {
      let release: () => void = () => {}
      const held = new Promise<void>((resolve) => {
        release = resolve
      })
      const previous = session.queue
      session.queue = previous.then(() => held)
      await previous
      try {
        const result = yield* generation.stream(generation.fromSession(session.starter(), options), options)
        await session.appendGenerated(result)
        return result
      } finally {
        release()
      }
    })()
  }

  private starter(): generation.Starter {
    return (options) => this.native.startGeneration(options)
  }

  private async appendGenerated(result: GenerateResult): Promise<void> {
    const known = callNative(() => this.native.ids).length
    const added = result.ids.slice(known)
    if (added.length > 0) await callNativeAsync(() => this.native.append(Uint32Array.from(added)))
  }

  /** Frees the KV cache; later calls reject with `ERR_DISPOSED`. */
  async dispose(): Promise<void> {
    await this.queue
    this.native.dispose()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose()
  }
}
