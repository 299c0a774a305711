// A failed generation as a BullMQ failure and back: the job's failedReason keeps the error's code
// as `CODE: message` (the form the native side reports errors in), and errors that only the job
// itself caused are not retried.
import { UnrecoverableError } from 'bullmq'
import { AbortError, type ErrorCode, NexttokenError } from '../errors'

/** Every code, so that a failedReason's code is recognised; a record keeps it in step with ErrorCode. */
const CODES: Record<ErrorCode, true> = {
  ERR_MODEL_NOT_FOUND: true,
  ERR_MODEL_INVALID: true,
  ERR_INVALID_ARG: true,
  ERR_TOKEN_OUT_OF_RANGE: true,
  ERR_CONTEXT_OVERFLOW: true,
  ERR_BACKEND_UNAVAILABLE: true,
  ERR_DISPOSED: true,
  ERR_STREAM_IDLE: true,
  ERR_OVERLOADED: true,
  ERR_HUB_AUTH: true,
  ERR_NETWORK: true,
  ERR_BINARY_NOT_FOUND: true,
  ERR_INTERNAL: true,
  ABORT_ERR: true,
}

/**
 * Failures that another attempt would repeat: the input or options are wrong, or the job was
 * cancelled. Anything else (a full scheduler queue, an internal error) may pass on a retry, if
 * the job has attempts left.
 */
const PERMANENT: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'ERR_INVALID_ARG',
  'ERR_TOKEN_OUT_OF_RANGE',
  'ERR_CONTEXT_OVERFLOW',
  'ABORT_ERR',
])

/** What the processor throws for `err`: an `UnrecoverableError` (no retry) for a permanent failure. */
export function toJobFailure(err: unknown): Error {
  if (!(err instanceof NexttokenError)) return err instanceof Error ? err : new Error(String(err))
  // A cancelled job's reason (worker.cancelJob(id, reason)) says who stopped it.
  const reason = err instanceof AbortError && err.cause !== undefined ? ` (${describe(err.cause)})` : ''
  const message = `${err.code}: ${err.message}${reason}`
  return PERMANENT.has(err.code) ? new UnrecoverableError(message) : new Error(message)
}

const describe = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/**
 * The error a failed job's `failedReason` stands for. A reason without a code did not come from
 * a generation (BullMQ's own, such as a job that stalled too often): `ERR_INTERNAL`.
 */
export function fromFailedReason(reason: string): NexttokenError {
  const match = /^([A-Z_]+): ([\s\S]*)$/.exec(reason)
  if (!match || !Object.hasOwn(CODES, match[1])) return new NexttokenError('ERR_INTERNAL', reason)
  const code = match[1] as ErrorCode
  return code === 'ABORT_ERR' ? new AbortError(match[2]) : new NexttokenError(code, match[2])
}
