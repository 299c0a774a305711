// What completions and chat completions share around the sampling fields: the model name, the
// stream flags, ids, and finish reasons.
import { randomUUID } from 'node:crypto'
import type { GenerateResult, StopReason } from '../generate-options'
import { HttpError } from './errors'
import { boolean, fieldsOf, object } from './fields'

export const STREAM_FIELDS = ['model', 'stream', 'stream_options'] as const

export interface Streaming {
  stream: boolean
  /** `stream_options.include_usage`: a last chunk with the usage and no choices. */
  includeUsage: boolean
}

/** The request's `model`, which must be the one served (as vLLM answers: 404 otherwise). */
export function checkModel(value: unknown, served: string): void {
  if (value !== undefined && value !== served)
    throw new HttpError(
      404,
      'model_not_found',
      `the model '${String(value)}' does not exist; this server has '${served}'`,
      'model',
    )
}

export function streaming(fields: Record<string, unknown>): Streaming {
  const stream = fields.stream === undefined ? false : boolean(fields.stream, 'stream')
  if (fields.stream_options === undefined) return { stream, includeUsage: false }
  const options = fieldsOf(object(fields.stream_options, 'stream_options'), ['include_usage'])
  const includeUsage =
    options.include_usage === undefined ? false : boolean(options.include_usage, 'stream_options.include_usage')
  return { stream, includeUsage }
}

/** A response's id and creation time, shared by its chunks. */
export function responseId(prefix: string): { id: string; created: number } {
  return { id: `${prefix}-${randomUUID().replaceAll('-', '')}`, created: Math.floor(Date.now() / 1000) }
}

/** OpenAI's `finish_reason`: `length` when a limit (max_tokens, the context) ended it, else `stop`. */
export function finishReason(reason: StopReason): 'stop' | 'length' {
  return reason === 'length' || reason === 'context' ? 'length' : 'stop'
}

export interface Usage {
  prompt_tokens: number
  completion_tokens: number
  total_tokens: number
}

/** A response's usage: its prompts' tokens (each read once, whatever `n`) and every choice's new tokens. */
export function usage(promptTokens: number, results: GenerateResult[] = []): Usage {
  const completionTokens = results.reduce((sum, r) => sum + r.newIds.length, 0)
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  }
}
