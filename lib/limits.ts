// Limits a caller sets on what a request may ask for (a queue worker's `limits`), below the caps
// the core holds every call to. The core checks them and words the refusals; this only checks
// their JS types.
import type * as native from '../binding'
import { invalidArg } from './errors'

/**
 * What one request may ask for, tighter than the library's own caps (which always hold: 64 beams,
 * 128 continuations of one prompt, 1024 sequences of one call, a 16 GiB KV-cache estimate, and
 * an input no longer than the model's context can hold). A request past one fails with
 * `ERR_INVALID_ARG` naming the limit.
 */
export interface GenerationLimits {
  /** Longest input: UTF-16 code units (`text.length`) of a text, or token ids. @default the model's context */
  maxInputLength?: number
  /** Most new tokens a request may ask for, by `maxNewTokens` or by `maxLength`. @default the model's context */
  maxNewTokens?: number
  /** Most beams (`numBeams`). @default 64 */
  maxNumBeams?: number
  /** Most continuations (`numReturnSequences`). @default 128 */
  maxNumReturnSequences?: number
}

const NAMES: Record<keyof GenerationLimits, true> = {
  maxInputLength: true,
  maxNewTokens: true,
  maxNumBeams: true,
  maxNumReturnSequences: true,
}

/** `limits` checked for JS types, as the binding takes them; undefined stays undefined. */
export function toNativeLimits(limits: GenerationLimits | undefined): native.NativeLimits | undefined {
  if (limits === undefined) return undefined
  if (limits === null || typeof limits !== 'object' || Array.isArray(limits))
    throw invalidArg('limits must be an object')
  for (const [name, value] of Object.entries(limits)) {
    if (!(name in NAMES)) throw invalidArg(`unknown limit '${name}'; known: ${Object.keys(NAMES).join(', ')}`)
    if (value === undefined) continue
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 0xffffffff)
      throw invalidArg(`limits.${name} must be a whole number from 1 to 2^32 - 1; got ${String(value)}`)
  }
  const { maxInputLength, maxNewTokens, maxNumBeams, maxNumReturnSequences } = limits
  return { maxInputLength, maxNewTokens, maxNumBeams, maxNumReturnSequences }
}
