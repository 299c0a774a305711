// The two requests huggingface_hub makes for a file, over Node's fetch: a HEAD to
// `{endpoint}/{repo}/resolve/{revision}/{file}` for its metadata, and a GET of its contents,
// resumed with `Range` when a connection drops.
import { createHash } from 'node:crypto'
import { promises as fs } from 'node:fs'
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
  const out: Record<string, string> = { 'user-agent': 'nexttoken', ...extra }
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

/**
 * HEAD the file, following redirects that stay on the Hub (the Hub answers small files with a
 * relative 307 to the canonical name) and stopping at one that leaves it (an LFS file's 302 to a
 * CDN): its headers describe the file, and the CDN's own ETag is not the file's.
 */
export async function fetchMetadata(url: string, options: RequestOptions): Promise<FileMetadata> {
  const hub = url
  let current = url
  for (let redirects = 0; redirects < 10; redirects++) {
    const signal = withTimeout(options.signal, options.timeoutS)
    const response = await fetch(current, {
      method: 'HEAD',
      redirect: 'manual',
      headers: headers(current, hub, options.token, { 'accept-encoding': 'identity' }),
      signal,
    }).catch((err) => rethrowAbort(err, options.signal))
    const location = response.headers.get('location')
    const redirect = response.status >= 300 && response.status < 400 && location
    if (!redirect && !response.ok) {
      throw new HubResponseError(
        response.status,
        response.headers.get('x-error-code'),
        response.headers.get('x-repo-commit'),
        current,
      )
    }
    const target = redirect ? new URL(location, current).toString() : current
    if (redirect && sameOrigin(target, hub)) {
      current = target
      continue
    }
    const commit = response.headers.get('x-repo-commit')
    const etag = normalizeEtag(response.headers.get('x-linked-etag') ?? response.headers.get('etag'))
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
    const linkedSize =
      response.headers.get('x-linked-size') ?? (redirect ? null : response.headers.get('content-length'))
    const size = linkedSize === null ? undefined : Number(linkedSize)
    return { commit, etag, size: Number.isFinite(size) ? size : undefined, location: target }
  }
  throw new NexttokenError('ERR_NETWORK', `too many redirects for ${url}`)
}

export interface DownloadOptions extends RequestOptions {
  hub: string
  size: number | undefined
  /** A sha256 the contents must have (an LFS file's etag). */
  sha256: string | undefined
  onBytes: (loaded: number) => void
}

/** How many times a dropped connection is resumed before the download fails. */
const RESUMES = 5

/**
 * GETs `url` into `path`. A connection that drops or stalls for `timeoutS` is resumed from where
 * it stopped with `Range` (from the start if the server ignores it). Checks the size and, for
 * LFS files, the sha256 before returning.
 */
export async function download(url: string, path: string, options: DownloadOptions): Promise<void> {
  const file = await fs.open(path, 'w')
  const hash = options.sha256 ? createHash('sha256') : undefined
  const written = { bytes: 0 }
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await transfer(url, file, written, hash, options)
        break
      } catch (err) {
        if (options.signal?.aborted || err instanceof HubResponseError || attempt >= RESUMES) throw err
      }
    }
  } catch (err) {
    rethrowAbort(err, options.signal)
  } finally {
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

/** One GET from byte `written.bytes` on, counting what it writes there. */
async function transfer(
  url: string,
  file: fs.FileHandle,
  written: { bytes: number },
  hash: ReturnType<typeof createHash> | undefined,
  options: DownloadOptions,
): Promise<void> {
  const from = written.bytes
  const stall = new AbortController()
  const signal = options.signal ? AbortSignal.any([options.signal, stall.signal]) : stall.signal
  let timer = setTimeout(() => stall.abort(), options.timeoutS * 1000)
  const range: Record<string, string> = from > 0 ? { range: `bytes=${from}-` } : {}
  try {
    const response = await fetch(url, { headers: headers(url, options.hub, options.token, range), signal })
    if (!response.ok || !response.body) {
      throw new HubResponseError(response.status, response.headers.get('x-error-code'), null, url)
    }
    if (from > 0 && response.status !== 206) {
      // The server ignored the range: start again (a running hash cannot be rewound).
      if (hash) throw new NexttokenError('ERR_NETWORK', `${url} cannot be resumed (no range support)`)
      written.bytes = 0
      await file.truncate(0)
    }
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
      clearTimeout(timer)
      timer = setTimeout(() => stall.abort(), options.timeoutS * 1000)
      await file.write(chunk, 0, chunk.length, written.bytes)
      hash?.update(chunk)
      written.bytes += chunk.length
      options.onBytes(written.bytes)
    }
    if (options.size !== undefined && written.bytes < options.size) throw new Error('the connection closed early')
  } finally {
    clearTimeout(timer)
  }
}
