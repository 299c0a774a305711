// What a model and a session share: the candidates they answer `topK` and `nextToken` with, and
// the check that a stream or a session continues a single sequence.
import { invalidArg } from './errors'
import type { GenerateOptions } from './generate-options'

/** A candidate next token. */
export interface TokenProbability {
  id: number
  /** The token's text, `tokenizer.decode([id])`. */
  token: string
  /** Probability under the softmax of the last position's logits. */
  p: number
  /** Natural log of `p`, computed without underflow. */
  logprob: number
}

/** A stream (or a session) continues one way: several continuations are `generate`'s. */
export function oneSequence(options: GenerateOptions | undefined): void {
  if (options?.numReturnSequences !== undefined) {
    throw invalidArg('numReturnSequences gives several results: use generate or generateBatch, not stream or a session')
  }
}
