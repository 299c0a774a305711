// The HTTP layer, on node:http: routing by method and path, the API key, the body (size-limited,
// parsed with JSON.parse), and every failure answered in OpenAI's error shape. node:http rather
// than a framework: the server has a handful of JSON routes and one SSE stream, and needs the
// raw response for backpressure and disconnects, which a framework would only wrap.
import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { errorBody, HttpError, toHttpError } from './errors'
import { EventStream } from './events'

/** What a route sees of a request, and how it answers. */
export interface Exchange {
  body: unknown
  /** Aborted when the client disconnects or the server closes: running generations stop. */
  signal: AbortSignal
  /** Answers 200 with `value` as JSON. */
  json(value: unknown): void
  /** Starts a 200 event stream. */
  events(): EventStream
}

export type Route = (exchange: Exchange) => unknown | Promise<unknown>

export interface HandlerOptions {
  /** Routes by `'METHOD /path'`. */
  routes: Record<string, Route>
  /** Paths answered without the API key. */
  open: ReadonlySet<string>
  apiKey: string | undefined
  maxBodyBytes: number
  /** Aborted when the server closes. */
  closing: AbortSignal
}

const digest = (text: string) => createHash('sha256').update(text).digest()

/** Whether the request carries the key, compared in constant time. */
function authorized(req: IncomingMessage, key: string): boolean {
  const header = req.headers.authorization ?? ''
  return timingSafeEqual(digest(header), digest(`Bearer ${key}`))
}

async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const tooLarge = () => new HttpError(413, 'body_too_large', `the request body is larger than ${limit} bytes`)
  if (Number(req.headers['content-length'] ?? 0) > limit) throw tooLarge()
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) throw tooLarge()
    chunks.push(chunk)
  }
  if (size === 0) return undefined
  try {
    return JSON.parse(Buffer.concat(chunks, size).toString('utf8'))
  } catch (err) {
    throw new HttpError(400, 'invalid_json', `the request body is not JSON: ${(err as Error).message}`)
  }
}

function sendJson(res: ServerResponse, status: number, value: unknown) {
  const body = JSON.stringify(value)
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) })
  res.end(body)
}

/** Answers `err` as OpenAI would: a status and an error body, or, once a stream has begun, an error event. */
function fail(res: ServerResponse, err: unknown, stream: EventStream | undefined) {
  const error = toHttpError(err)
  if (res.writableEnded || res.destroyed) return
  if (stream) {
    res.end(`data: ${JSON.stringify(errorBody(error))}\n\ndata: [DONE]\n\n`)
    return
  }
  // A body the server did not read to its end would be read as the next request: close instead.
  if (error.status === 413) res.setHeader('Connection', 'close')
  if (error.status === 429 || error.status === 503) res.setHeader('Retry-After', '1')
  sendJson(res, error.status, errorBody(error))
}

/** The request listener of an `http.Server`. */
export function handler(options: HandlerOptions) {
  const methods = new Map<string, string[]>()
  for (const key of Object.keys(options.routes)) {
    const [method, path] = key.split(' ')
    methods.set(path, [...(methods.get(path) ?? []), method])
  }
  return async (req: IncomingMessage, res: ServerResponse) => {
    const left = new AbortController()
    res.on('close', () => {
      if (!res.writableFinished) left.abort(new Error('the client disconnected'))
    })
    let stream: EventStream | undefined
    const signal = AbortSignal.any([left.signal, options.closing])
    try {
      const path = new URL(req.url ?? '/', 'http://localhost').pathname
      const route = options.routes[`${req.method} ${path}`]
      if (!route) {
        const allowed = methods.get(path)
        if (allowed) throw new HttpError(405, 'method_not_allowed', `${path} takes ${allowed.join(', ')}`)
        throw new HttpError(404, 'not_found', `no route ${req.method} ${path}`)
      }
      if (options.apiKey !== undefined && !options.open.has(path) && !authorized(req, options.apiKey))
        throw new HttpError(401, 'invalid_api_key', 'a valid API key is needed: Authorization: Bearer <key>')
      const body = req.method === 'POST' ? await readJson(req, options.maxBodyBytes) : undefined
      await route({
        body,
        signal,
        json: (value) => sendJson(res, 200, value),
        events: () => {
          stream = new EventStream(res, signal)
          return stream
        },
      })
    } catch (err) {
      if (!signal.aborted) fail(res, err, stream)
      else if (!res.writableEnded) res.destroy()
    }
  }
}
