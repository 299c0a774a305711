// GPT-2's tokenizer: synchronous, because encoding takes microseconds.
import type * as binding from '../binding'
import { native } from './native'
import { callNative, callNativeAsync, invalidArg, NexttokenError } from './errors'
import { type HubOptions, resolvePretrained } from './hub/index'

/** Text, or token ids from `tokenizer.encode` (any array-like of integers). */
export type ModelInput = string | ArrayLike<number>

/** Token ids as the native side takes them, checked first: a Uint32Array would wrap -1 silently. */
export function toTokenIds(ids: ArrayLike<number>): Uint32Array {
  if (ids instanceof Uint32Array) return ids
  if (ids == null || typeof ids !== 'object' || typeof ids.length !== 'number') {
    throw invalidArg('expected text or an array of token ids')
  }
  if (!Number.isInteger(ids.length) || ids.length < 0 || ids.length > 0xffffffff) {
    throw invalidArg(`token ids must have a length that is a whole number; got ${String(ids.length)}`)
  }
  const out = new Uint32Array(ids.length)
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]
    if (typeof id !== 'number' || !Number.isInteger(id)) {
      throw invalidArg(`token ids must be integers; got ${String(id)} at index ${i}`)
    }
    if (id < 0 || id > 0xffffffff) {
      throw new NexttokenError('ERR_TOKEN_OUT_OF_RANGE', `token id ${id} at index ${i} is out of range`)
    }
    out[i] = id
  }
  return out
}

/** GPT-2's byte-level BPE tokenizer, the same ids as `GPT2TokenizerFast`. */
export class Tokenizer {
  /** @internal */
  constructor(private readonly native: binding.NativeTokenizer) {}

  /**
   * Loads the tokenizer of a Hub repo id (`'gpt2'`; see `Gpt2.fromPretrained` for the cache and
   * the options) or of a model directory: `tokenizer.json`, or `vocab.json` + `merges.txt`; or
   * of a GPT-2 GGUF file, from its `tokenizer.ggml.*` metadata (same rule as `Gpt2.fromPretrained`).
   */
  static async fromPretrained(nameOrPath: string, options: HubOptions = {}): Promise<Tokenizer> {
    if (typeof nameOrPath !== 'string') throw invalidArg('nameOrPath must be a string')
    if (options === null || typeof options !== 'object') throw invalidArg('options must be an object')
    const dir = await resolvePretrained(nameOrPath, options, 'tokenizer')
    return new Tokenizer(await callNativeAsync(() => native.loadTokenizer(dir)))
  }

  /** Token ids of `text`, as `tokenizer(text)['input_ids']` in transformers. */
  encode(text: string): Uint32Array {
    if (typeof text !== 'string') throw invalidArg('encode expects a string')
    return callNative(() => this.native.encode(text))
  }

  /** Text of `ids`, special tokens kept, as `tokenizer.decode(ids)` in transformers. */
  decode(ids: ArrayLike<number>): string {
    const checked = toTokenIds(ids)
    return callNative(() => this.native.decode(checked))
  }

  /** The vocabulary entry of `id` in its byte-level form (`'Ġthe'`), as `convert_ids_to_tokens`. */
  idToToken(id: number): string {
    const [checked] = toTokenIds([id])
    return callNative(() => this.native.idToToken(checked))
  }

  /** The id of a vocabulary entry (`'Ġthe'`), or undefined when there is none. */
  tokenToId(token: string): number | undefined {
    if (typeof token !== 'string') throw invalidArg('tokenToId expects a string')
    return this.native.tokenToId(token) ?? undefined
  }

  /** Number of token ids, special tokens included (50257 for GPT-2). */
  get vocabSize(): number {
    return this.native.vocabSize
  }

  /** @internal */
  toIds(input: ModelInput): Uint32Array {
    return typeof input === 'string' ? this.encode(input) : toTokenIds(input)
  }
}
