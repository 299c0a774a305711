// `serve(model)`: an OpenAI-compatible HTTP server over a loaded model (`nexttoken serve` on the
// command line). Requests share the model's continuous batching and prefix cache.
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { invalidArg } from '../errors'
import type { Gpt2 } from '../gpt2'
import { chatCompletions } from './chat'
import { completions } from './completions'
import { HttpError } from './errors'
import { handler, type Route } from './http'
import { detokenize, tokenize } from './tokenize'

/** Options of {@link serve}. */
export interface ServeOptions {
  /** The address to listen on; `'0.0.0.0'` for every interface. @default '127.0.0.1' */
  host?: string
  /** The port; 0 picks a free one (see `Server.url`). @default 8000 */
  port?: number
  /**
   * Requests (all but `GET /health`) must carry `Authorization: Bearer <apiKey>`, or get a 401.
   * @default none: no key needed
   */
  apiKey?: string
  /** The model's id in `GET /v1/models`; a request naming another model gets a 404. @default 'gpt2' */
  modelName?: string
  /** Larger request bodies get a 413. @default 2097152 (2 MiB) */
  maxBodyBytes?: number
}

/** A running server (see {@link serve}). */
export interface Server {
  /** Where it listens, as `http://host:port`. */
  readonly url: string
  readonly port: number
  /** Stops listening, ends every request still running (their generations stop) and resolves once all is closed. The model stays loaded. */
  close(): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
}

const DEFAULTS = { host: '127.0.0.1', port: 8000, modelName: 'gpt2', maxBodyBytes: 2 * 1024 * 1024 }

function routes(model: Gpt2, name: string): Record<string, Route> {
  const created = Math.floor(Date.now() / 1000)
  const health: Route = ({ json }) => {
    if (model.disposed) throw new HttpError(503, 'ERR_DISPOSED', 'the model has been disposed')
    json({ status: 'ok' })
  }
  return {
    'GET /health': health,
    'GET /v1/models': ({ json }) =>
      json({
        object: 'list',
        data: [{ id: name, object: 'model', created, owned_by: 'nexttoken', max_model_len: model.config.nPositions }],
      }),
    'POST /v1/completions': completions(model, name),
    'POST /v1/chat/completions': chatCompletions(model, name),
    'POST /tokenize': tokenize(model, name),
    'POST /detokenize': detokenize(model, name),
  }
}

/**
 * Serves `model` over HTTP with OpenAI's API, for OpenAI clients and evaluation tools (see
 * docs/serve.md): `POST /v1/completions`, `POST /v1/chat/completions`, `GET /v1/models`,
 * `GET /health`, and vLLM's `POST /tokenize` and `POST /detokenize`. Resolves once it listens.
 */
export async function serve(model: Gpt2, options: ServeOptions = {}): Promise<Server> {
  if (options === null || typeof options !== 'object') throw invalidArg('options must be an object')
  // Left out or undefined, an option takes its default.
  const set = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined))
  const { host, port, apiKey, modelName, maxBodyBytes } = { ...DEFAULTS, apiKey: undefined, ...set } as ServeOptions &
    typeof DEFAULTS
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw invalidArg(`port must be from 0 to 65535; got ${port}`)
  if (!Number.isInteger(maxBodyBytes) || maxBodyBytes < 1) throw invalidArg('maxBodyBytes must be a positive integer')
  if (apiKey !== undefined && (typeof apiKey !== 'string' || apiKey === ''))
    throw invalidArg('apiKey must be a non-empty string')
  const closing = new AbortController()
  const server = createServer(
    handler({
      routes: routes(model, modelName),
      open: new Set(['/health']),
      apiKey,
      maxBodyBytes,
      closing: closing.signal,
    }),
  )
  server.listen(port, host)
  await once(server, 'listening')
  const address = server.address() as AddressInfo
  const close = async () => {
    if (!server.listening) return
    closing.abort(new Error('the server is closing'))
    const closed = once(server, 'close')
    server.close()
    server.closeAllConnections()
    await closed
  }
  return {
    url: `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`,
    port: address.port,
    close,
    [Symbol.asyncDispose]: close,
  }
}
