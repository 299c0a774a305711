// Failures as OpenAI answers them: an HTTP status and `{ error: { message, type, param, code } }`.
// A library error keeps its stable code; the status follows from it.
import { NexttokenError } from '../errors'

/** A failure the server answers with `status`; `code` is stable, `param` names the request field. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly param: string | null = null,
  ) {
    super(message)
    this.name = 'HttpError'
  }
}

/** A request field that is wrong: 400, naming it. */
export function badField(param: string, message: string): HttpError {
  return new HttpError(400, 'invalid_request', `${param}: ${message}`, param)
}

/** The status of each library code a request can cause; anything else is the server's fault (500). */
const STATUS: Record<string, number> = {
  ERR_INVALID_ARG: 400,
  ERR_TOKEN_OUT_OF_RANGE: 400,
  ERR_CONTEXT_OVERFLOW: 400,
  // The queue is full (`maxQueueLength`): the client should retry later, as from a rate limit.
  ERR_OVERLOADED: 429,
  ERR_DISPOSED: 503,
}

/** OpenAI's error types by status (its clients raise a class per status). */
const TYPE: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  404: 'not_found_error',
  405: 'invalid_request_error',
  413: 'invalid_request_error',
  429: 'rate_limit_error',
  503: 'service_unavailable_error',
}

/** Any failure as an HttpError: a library error by its code, an unknown one as a 500. */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err
  if (err instanceof NexttokenError) return new HttpError(STATUS[err.code] ?? 500, err.code, err.message)
  return new HttpError(500, 'ERR_INTERNAL', `internal error: ${err instanceof Error ? err.message : String(err)}`)
}

/** The JSON body of an error response. */
export function errorBody(err: HttpError): {
  error: { message: string; type: string; param: string | null; code: string }
} {
  return { error: { message: err.message, type: TYPE[err.status] ?? 'server_error', param: err.param, code: err.code } }
}
