// `serve(model)`: an OpenAI-compatible HTTP server over a loaded model (`nexttoken serve` on the
// command line). Requests share the model's continuous batching and prefix cache.

import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { invalidArg } from '../errors'
import { Gpt2 } from '../gpt2'
import { chatCompletions } from './chat'
import { completions } from './completions'
import { HttpError } from './errors'
import { handler, type Route } from './http'
import { resolveOptions, type ServeOptions } from './options'
import { detokenize, tokenize } from './tokenize'

export type { ServeOptions }

/** A running server (see {@link serve}). */
export interface Server {
  /** Where it listens, as `http://host:port`. */
  readonly url: string
  readonly port: number
  /** Stops listening, ends every request still running (their generations stop) and resolves once all is closed. The model stays loaded. */
  close(): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
}

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
  if (!(model instanceof Gpt2)) throw invalidArg('serve expects a loaded Gpt2 model')
  const { host, port, apiKey, modelName, maxBodyBytes } = resolveOptions(options)
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
