// Error classes and the bridge that turns the native side's coded messages into them.

/** Stable codes carried by every error this library throws, as `err.code`. */
export type ErrorCode =
  | 'ERR_MODEL_NOT_FOUND'
  | 'ERR_MODEL_INVALID'
  | 'ERR_INVALID_ARG'
  | 'ERR_TOKEN_OUT_OF_RANGE'
  | 'ERR_CONTEXT_OVERFLOW'
  | 'ERR_BACKEND_UNAVAILABLE'
  | 'ERR_DISPOSED'
  | 'ERR_STREAM_IDLE'
  | 'ERR_OVERLOADED'
  | 'ERR_HUB_AUTH'
  | 'ERR_NETWORK'
  | 'ERR_BINARY_NOT_FOUND'
  | 'ERR_INTERNAL'
  | 'ABORT_ERR'

const NATIVE_CODES: ReadonlySet<string> = new Set<ErrorCode>([
  'ERR_MODEL_NOT_FOUND',
  'ERR_MODEL_INVALID',
  'ERR_INVALID_ARG',
  'ERR_TOKEN_OUT_OF_RANGE',
  'ERR_CONTEXT_OVERFLOW',
  'ERR_BACKEND_UNAVAILABLE',
  'ERR_DISPOSED',
  'ERR_STREAM_IDLE',
  'ERR_OVERLOADED',
  'ERR_INTERNAL',
])

/** Every failure of this library: an `Error` with a stable `code` to branch on. */
export class NexttokenError extends Error {
  readonly code: ErrorCode

  constructor(code: ErrorCode, message: string) {
    super(message)
    this.name = 'NexttokenError'
    this.code = code
  }
}

/**
 * Thrown when an `AbortSignal` stops a call: `name` is `'AbortError'` and `code` is
 * `'ABORT_ERR'`, as in Node's own APIs. `partial` holds what was generated before the abort.
 */
export class AbortError<Partial = unknown> extends NexttokenError {
  readonly partial: Partial | undefined

  constructor(message = 'The operation was aborted', partial?: Partial, options?: { cause?: unknown }) {
    super('ABORT_ERR', message)
    this.name = 'AbortError'
    this.partial = partial
    if (options?.cause !== undefined) (this as { cause?: unknown }).cause = options.cause
  }
}

export function invalidArg(message: string): NexttokenError {
  return new NexttokenError('ERR_INVALID_ARG', message)
}

/** An options argument must be an object (a string or null is a mistake, not "no options"). */
export function checkOptionsObject(options: unknown, name = 'options'): void {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw invalidArg(`${name} must be an object; got ${options === null ? 'null' : typeof options}`)
  }
}

/** The native side reports failures as `Error('ERR_CODE: message')`; lift the code out. */
function lift(err: unknown): unknown {
  if (err instanceof Error) {
    const match = /^([A-Z_]+): ([\s\S]*)$/.exec(err.message)
    if (match && NATIVE_CODES.has(match[1])) return new NexttokenError(match[1] as ErrorCode, match[2])
  }
  return err
}

export function callNative<T>(call: () => T): T {
  try {
    return call()
  } catch (err) {
    throw lift(err)
  }
}

export async function callNativeAsync<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (err) {
    throw lift(err)
  }
}
