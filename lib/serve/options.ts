// The options of `serve`: documented, defaulted and checked in one place.
import { checkOptionsObject, invalidArg } from '../errors'

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

const DEFAULTS = { host: '127.0.0.1', port: 8000, modelName: 'gpt2', maxBodyBytes: 2 * 1024 * 1024 }
const NAMES = ['host', 'port', 'apiKey', 'modelName', 'maxBodyBytes']

const text = (value: unknown, name: string) => {
  if (typeof value !== 'string' || value === '') throw invalidArg(`${name} must be a non-empty string`)
  return value
}

/** Every option, checked, with its default where left out (or undefined). */
export function resolveOptions(options: ServeOptions) {
  checkOptionsObject(options)
  const unknown = Object.keys(options).find((name) => !NAMES.includes(name))
  if (unknown) throw invalidArg(`unknown option '${unknown}'; known: ${NAMES.join(', ')}`)
  const { host, port, apiKey, modelName, maxBodyBytes } = options
  const resolved = {
    host: host === undefined ? DEFAULTS.host : text(host, 'host'),
    port: port ?? DEFAULTS.port,
    apiKey: apiKey === undefined ? undefined : text(apiKey, 'apiKey'),
    modelName: modelName === undefined ? DEFAULTS.modelName : text(modelName, 'modelName'),
    maxBodyBytes: maxBodyBytes ?? DEFAULTS.maxBodyBytes,
  }
  if (!Number.isInteger(resolved.port) || resolved.port < 0 || resolved.port > 65535)
    throw invalidArg(`port must be a whole number from 0 to 65535; got ${resolved.port}`)
  if (!Number.isSafeInteger(resolved.maxBodyBytes) || resolved.maxBodyBytes < 1)
    throw invalidArg(`maxBodyBytes must be a positive whole number; got ${resolved.maxBodyBytes}`)
  return resolved
}
