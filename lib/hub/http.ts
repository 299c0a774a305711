// The two requests huggingface_hub makes for a file: a HEAD to
// `{endpoint}/{repo}/resolve/{revision}/{file}` for its metadata, and a GET of its contents,
// resumed with `Range` when a connection drops.
//
// Over node:http / node:https, not fetch. The fetch of Node 22 and 24 (the undici they bundle,
// 6.x and 7.x) ends the process with an uncatchable AssertionError when its HTTP/1 parser is
// paused by backpressure (a body not yet read, or read more slowly than it arrives) and the
// server then closes the connection (undici issue 5360, fixed only in undici 8, which Node 26
// bundles). Reading or cancelling every body does not close that hole: a download whose last
// bytes and FIN arrive while the previous chunk is still being written to disk pauses the parser
// the same way, and the catalogue's healthy download did crash so. node:http has no such
// assertion, is in every runtime we support (Node, Bun, Deno), and lets every exchange be
// watched from start to end: each request and response has an 'error' listener for its whole
// life, a body we do not want is destroyed, and a timeout or an abort destroys the exchange.
import { createHash } from 'node:crypto'
import { promises as fs } from 'node:fs'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { AbortError, NexttokenError } from '../errors'
import { COMMIT } from './cache'

/** What the Hub says of a file. */
export interface FileMetadata {
  /** The commit the revision resolved to (`X-Repo-Commit`). */
  commit: string
  /** The file's etag (`X-Linked-Etag`, else `ETag`): a sha256 for LFS files. */
  etag: string
  size: number | undefined
  /** Where to GET it: the Hub, or a CDN it redirects to. */
  location: string
}

export interface RequestOptions {
  token: string | undefined
  timeoutS: number
  signal: AbortSignal | undefined
}

/** The Hub answered, but not with the file: by `X-Error-Code` and status. */
export class HubResponseError extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: string | null,
    readonly commit: string | null,
    readonly url: string,
  ) {
    super(`HTTP ${status}${errorCode ? ` (${errorCode})` : ''} for ${url}`)
  }

  /** The repo, revision or file does not exist (or is private and no token says otherwise). */
  get notFound(): boolean {
    return ['RepoNotFound', 'EntryNotFound', 'RevisionNotFound'].includes(this.errorCode ?? '') || this.status === 404
  }

  get auth(): boolean {
    return this.errorCode === 'GatedRepo' || this.status === 401 || this.status === 403
  }

  /** Worth falling back to the cache for, as Python does: the Hub is down or overloaded. */
  get transient(): boolean {
    return this.status >= 500 || this.status === 429 || this.status === 408
  }
}

/** Origins that may see the token: the Hub's own. A CDN it redirects to never does. */
function sameOrigin(a: string, b: string): boolean {
  return new URL(a).origin === new URL(b).origin
}

function headers(url: string, hub: string, token: string | undefined, extra: Record<string, string> = {}) {
  // `identity`: the bytes on the wire are the file's, so that its declared size bounds them.
  const out: Record<string, string> = { 'user-agent': 'nexttoken', 'accept-encoding': 'identity', ...extra }
  if (token && sameOrigin(url, hub)) out.authorization = `Bearer ${token}`
  return out
}

/** The caller's signal and a timeout, as one signal. */
function withTimeout(signal: AbortSignal | undefined, timeoutS: number): AbortSignal {
  const timeout = AbortSignal.timeout(timeoutS * 1000)
  return signal ? AbortSignal.any([signal, timeout]) : timeout
}

/** An aborted caller signal becomes our AbortError; anything else stays as it is. */
export function rethrowAbort(err: unknown, signal: AbortSignal | undefined): never {
  if (signal?.aborted) throw new AbortError('download aborted', undefined, { cause: signal.reason })
  throw err
}

/** ETag values as Python normalises them: no weak prefix, no quotes. */
function normalizeEtag(etag: string | null): string | undefined {
  return etag?.replace(/^W\//, '').replace(/^"|"$/g, '') || undefined
}

/** A response header, or null (repeated ones joined, as fetch's Headers joins them). */
function header(response: IncomingMessage, name: string): string | null {
  const value = response.headers[name]
  return Array.isArray(value) ? value.join(', ') : (value ?? null)
}

const ok = (response: IncomingMessage) => (response.statusCode ?? 0) >= 200 && (response.statusCode ?? 0) < 300

/** Redirect statuses: followed through their `location`. */
const REDIRECT = new Set([301, 302, 303, 307, 308])

/** How many redirects one request follows. */
const MAX_REDIRECTS = 10

const asError = (reason: unknown) => (reason instanceof Error ? reason : new Error(String(reason)))

/**
 * Sends one request and resolves with the response's head. Its body is the caller's to read to
 * the end or to `discard`; until the exchange is over, an abort of `signal` destroys it (the
 * body, if one is being read, then fails with the signal's reason), and errors of the request
 * and of the response have listeners, so that none can reach the process as an unhandled
 * 'error' event.
 */
function send(
  url: string,
  method: 'HEAD' | 'GET',
  requestHeaders: Record<string, string>,
  signal: AbortSignal,
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    let target: URL
    try {
      target = new URL(url)
    } catch {
      reject(new NexttokenError('ERR_NETWORK', `${url} is not a URL`))
      return
    }
    if (target.protocol !== 'http:' && target.protocol !== 'https:') {
      reject(new NexttokenError('ERR_NETWORK', `${url}: only http and https URLs are fetched`))
      return
    }
    if (signal.aborted) {
      reject(signal.reason)
      return
    }
    const request = (target.protocol === 'https:' ? httpsRequest : httpRequest)(target, {
      method,
      headers: requestHeaders,
    })
    let response: IncomingMessage | undefined
    const onAbort = () => {
      const reason = asError(signal.reason)
      if (response) response.destroy(reason)
      else request.destroy(reason)
      reject(reason)
    }
    const done = () => signal.removeEventListener('abort', onAbort)
    signal.addEventListener('abort', onAbort, { once: true })
    request.on('close', () => {
      if (!response) done()
    })
    request.on('error', (err) => {
      if (!response) {
        done()
        reject(err)
      } else if (!response.complete) {
        // The connection failed mid-body: the body's reader sees it.
        response.destroy(err)
      }
      // Else the response is whole and this is about bytes after it (past its Content-Length,
      // on a connection the server closes): they are not the file.
    })
    request.on('response', (incoming: IncomingMessage) => {
      response = incoming
      incoming.on('error', () => {}) // seen by the reader, if any; never unhandled
      incoming.on('close', done)
      resolve(incoming)
    })
    request.end()
  })
}

/**
 * Lets go of a response whose body is not wanted: one already received in full is drained (so
 * that its connection can serve the next request), any other is destroyed with its connection.
 */
function discard(response: IncomingMessage): void {
  if (response.complete) response.resume()
  else response.destroy()
}

/**
 * HEAD the file, following redirects that stay on the Hub (the Hub answers small files with a
 * relative 307 to the canonical name) and stopping at one that leaves it (an LFS file's 302 to a
 * CDN): its headers describe the file, and the CDN's own ETag is not the file's.
 */
export async function fetchMetadata(url: string, options: RequestOptions): Promise<FileMetadata> {
  const hub = url
  let current = url
  for (let redirects = 0; redirects < MAX_REDIRECTS; redirects++) {
    const signal = withTimeout(options.signal, options.timeoutS)
    const response = await send(current, 'HEAD', headers(current, hub, options.token), signal).catch((err) =>
      rethrowAbort(err, options.signal),
    )
    discard(response) // a HEAD has no body: this frees the connection
    const status = response.statusCode ?? 0
    const location = header(response, 'location')
    const redirect = REDIRECT.has(status) && location
    if (!redirect && !ok(response)) {
      throw new HubResponseError(status, header(response, 'x-error-code'), header(response, 'x-repo-commit'), current)
    }
    let target = current
    if (redirect) {
      try {
        target = new URL(location, current).toString()
      } catch {
        throw new NexttokenError('ERR_NETWORK', `${current} redirected to an invalid URL: ${location}`)
      }
    }
    if (redirect && sameOrigin(target, hub)) {
      current = target
      continue
    }
    const commit = header(response, 'x-repo-commit')
    const etag = normalizeEtag(header(response, 'x-linked-etag') ?? header(response, 'etag'))
    if (!commit || !etag) {
      throw new NexttokenError(
        'ERR_NETWORK',
        `${current} answered without ${commit ? 'an ETag' : 'an X-Repo-Commit header'}: it does not look like the Hugging Face Hub (check HF_ENDPOINT)`,
      )
    }
    // Both become names in the cache (snapshots/{commit}, blobs/{etag}): anything but a plain
    // name there would read or write outside it.
    if (!COMMIT.test(commit)) {
      throw new NexttokenError('ERR_NETWORK', `${current} answered with a malformed X-Repo-Commit header: ${commit}`)
    }
    if (!/^[\w.-]{1,128}$/.test(etag) || /^\.+$/.test(etag)) {
      throw new NexttokenError('ERR_NETWORK', `${current} answered with a malformed ETag: ${etag}`)
    }
    const linkedSize = header(response, 'x-linked-size') ?? (redirect ? null : header(response, 'content-length'))
    const size = linkedSize === null ? undefined : Number(linkedSize)
    return {
      commit,
      etag,
      size: Number.isSafeInteger(size) && (size as number) >= 0 ? size : undefined,
      location: target,
    }
  }
  throw new NexttokenError('ERR_NETWORK', `too many redirects for ${url}`)
}

export interface DownloadOptions extends RequestOptions {
  hub: string
  size: number | undefined
  /** A sha256 the contents must have (an LFS file's etag). */
  sha256: string | undefined
  /** Seconds the whole download may take, resumes included; else `deadlineS(size)`. */
  deadlineS: number | undefined
  onBytes: (loaded: number) => void
}

/** How many times a dropped connection is resumed before the download fails. */
const RESUMES = 5

/**
 * The most bytes a file whose size the Hub did not declare may have. The Hub declares every
 * file's size (`Content-Length`, or `X-Linked-Size` for LFS files), and a file kept in git there
 * is at most 10 MB: only another server leaves it out.
 */
export const UNDECLARED_MAX_BYTES = 256 * 1024 * 1024

/** The average rate below which a download is given up, after a first `DEADLINE_GRACE_S`. */
export const MIN_BYTES_PER_S = 64 * 1024
export const DEADLINE_GRACE_S = 300

/**
 * How long a download of `size` bytes may take in all, resumes included, next to the stall
 * timeout (which only bounds the gap between two chunks, so that a trickle of a byte every few
 * seconds would otherwise never end): 5 minutes, plus a second per 64 KiB. A 500 MB file gets
 * 2 h 12 min.
 */
export function deadlineS(size: number | undefined): number {
  return DEADLINE_GRACE_S + (size ?? UNDECLARED_MAX_BYTES) / MIN_BYTES_PER_S
}

/** Why a transfer was stopped: the overall deadline or the stall timeout, not the caller. */
class Timeout extends Error {}

/**
 * GETs `url` into `path`. A connection that drops or stalls for `timeoutS` is resumed from where
 * it stopped with `Range` (from the start if the server ignores it). The transfer stops as soon
 * as it passes the declared size (or `UNDECLARED_MAX_BYTES`), and when the whole download
 * outlives its deadline. Checks the size and, for LFS files, the sha256 before returning.
 */
export async function download(url: string, path: string, options: DownloadOptions): Promise<void> {
  const file = await fs.open(path, 'w')
  const hash = options.sha256 ? createHash('sha256') : undefined
  const written = { bytes: 0 }
  const seconds = options.deadlineS ?? deadlineS(options.size)
  const overall = new AbortController()
  const deadline = setTimeout(() => overall.abort(new Timeout(`took longer than ${seconds} s`)), seconds * 1000)
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await transfer(url, file, written, hash, options, overall.signal)
        break
      } catch (err) {
        if (overall.signal.aborted) {
          throw new NexttokenError(
            'ERR_NETWORK',
            `${url}: the download did not finish in ${seconds} s (${written.bytes} bytes by then; NEXTTOKEN_HUB_DOWNLOAD_DEADLINE sets the limit)`,
          )
        }
        if (options.signal?.aborted || err instanceof HubResponseError || err instanceof NexttokenError) throw err
        if (attempt >= RESUMES) throw err
      }
    }
  } catch (err) {
    rethrowAbort(err, options.signal)
  } finally {
    clearTimeout(deadline)
    await file.close()
  }
  if (options.size !== undefined && written.bytes !== options.size) {
    throw new NexttokenError('ERR_NETWORK', `${url}: got ${written.bytes} bytes, expected ${options.size}`)
  }
  const digest = hash?.digest('hex')
  if (digest !== undefined && digest !== options.sha256) {
    throw new NexttokenError('ERR_NETWORK', `${url}: the download's sha256 is ${digest}, expected ${options.sha256}`)
  }
}

/** GETs `url` from byte `from` on, following redirects; the token goes to the Hub's origin only. */
async function get(url: string, from: number, options: DownloadOptions, signal: AbortSignal): Promise<IncomingMessage> {
  const range: Record<string, string> = from > 0 ? { range: `bytes=${from}-` } : {}
  let current = url
  for (let redirects = 0; redirects <= MAX_REDIRECTS; redirects++) {
    const response = await send(current, 'GET', headers(current, options.hub, options.token, range), signal)
    const location = header(response, 'location')
    if (!REDIRECT.has(response.statusCode ?? 0) || !location) return response
    discard(response)
    try {
      current = new URL(location, current).toString()
    } catch {
      throw new NexttokenError('ERR_NETWORK', `${current} redirected to an invalid URL: ${location}`)
    }
  }
  throw new NexttokenError('ERR_NETWORK', `too many redirects for ${url}`)
}

/** One GET from byte `written.bytes` on, counting what it writes there. */
async function transfer(
  url: string,
  file: fs.FileHandle,
  written: { bytes: number },
  hash: ReturnType<typeof createHash> | undefined,
  options: DownloadOptions,
  overall: AbortSignal,
): Promise<void> {
  const from = written.bytes
  const stall = new AbortController()
  const signal = AbortSignal.any(options.signal ? [options.signal, overall, stall.signal] : [overall, stall.signal])
  const stalled = () => stall.abort(new Timeout(`no byte for ${options.timeoutS} s`))
  let timer = setTimeout(stalled, options.timeoutS * 1000)
  const declared = options.size !== undefined
  const limit = options.size ?? UNDECLARED_MAX_BYTES
  const tooLong = () =>
    new NexttokenError(
      'ERR_NETWORK',
      declared
        ? `${url} sent more than the ${limit} bytes declared for it`
        : `${url} sent more than ${limit} bytes, the most a file of undeclared size may have`,
    )
  try {
    const response = await get(url, from, options, signal)
    try {
      await receive(response)
    } finally {
      // Every way out of here but the body's end lets go of it (a complete one is drained).
      if (!response.readableEnded) discard(response)
    }
  } finally {
    clearTimeout(timer)
  }

  /** Checks the answer, then writes its body to the file. */
  async function receive(response: IncomingMessage): Promise<void> {
    const status = response.statusCode ?? 0
    if (!ok(response)) {
      throw new HubResponseError(status, header(response, 'x-error-code'), null, url)
    }
    const encoding = header(response, 'content-encoding')
    if (encoding && encoding.toLowerCase() !== 'identity') {
      throw new NexttokenError(
        'ERR_NETWORK',
        `${url} was sent with content-encoding ${encoding}, which was not asked for`,
      )
    }
    let start = from
    if (from > 0 && status !== 206) {
      // The server ignored the range: start again (a running hash cannot be rewound).
      if (hash) {
        throw new NexttokenError('ERR_NETWORK', `${url} cannot be resumed (no range support)`)
      }
      start = 0
    } else if (from > 0 && !header(response, 'content-range')?.startsWith(`bytes ${from}-`)) {
      throw new NexttokenError('ERR_NETWORK', `${url} answered a range from byte ${from} with another range`)
    }
    const length = Number(header(response, 'content-length') ?? Number.NaN)
    if (Number.isFinite(length) && start + length > limit) {
      throw tooLong()
    }
    if (start === 0 && from > 0) {
      written.bytes = 0
      await file.truncate(0)
    }
    for await (const chunk of response as AsyncIterable<Buffer>) {
      clearTimeout(timer)
      timer = setTimeout(stalled, options.timeoutS * 1000)
      // Leaving the loop destroys the response and its connection.
      if (written.bytes + chunk.length > limit) throw tooLong()
      await file.write(chunk, 0, chunk.length, written.bytes)
      hash?.update(chunk)
      written.bytes += chunk.length
      options.onBytes(written.bytes)
    }
    if (options.size !== undefined && written.bytes < options.size) throw new Error('the connection closed early')
  }
}
