// One file of a repo, from the cache or the Hub, as huggingface_hub's `hf_hub_download` gets it:
// a commit in hand and its snapshot present means no request; else the Hub's metadata decides;
// an unreachable Hub falls back to what the cache holds for the revision.
import { promises as fs } from 'node:fs'
import { dirname } from 'node:path'
import { NexttokenError } from '../errors'
import { COMMIT, RepoCache, tagCacheDir } from './cache'
import { download, type FileMetadata, fetchMetadata, HubResponseError } from './http'
import type { HubSettings } from './settings'

/** A file of the repo at a commit, where it is in the cache, or planned for download. */
export type Located =
  | { kind: 'cached'; file: string; commit: string; path: string }
  | { kind: 'missing'; file: string; commit: string | undefined }
  | { kind: 'download'; file: string; commit: string; meta: FileMetadata }

export class Repo {
  readonly cache: RepoCache

  constructor(
    readonly repoId: string,
    readonly settings: HubSettings,
  ) {
    this.cache = new RepoCache(settings.cacheDir, repoId)
  }

  private url(revision: string, file: string): string {
    const path = file.split('/').map(encodeURIComponent).join('/')
    return `${this.settings.endpoint}/${this.repoId}/resolve/${encodeURIComponent(revision)}/${path}`
  }

  /**
   * Where `file` is at `revision`: cached, missing from the repo, or to be downloaded (after a
   * HEAD). `revision` is the caller's, or the commit an earlier file of the same load pinned.
   */
  async locate(revision: string, file: string): Promise<Located> {
    const { settings, cache } = this
    if (COMMIT.test(revision) && !settings.forceDownload) {
      const known = await cache.lookup(revision, file)
      if (known === 'missing') return { kind: 'missing', file, commit: revision }
      if (known) return { kind: 'cached', file, commit: revision, path: known.path }
    }
    if (settings.offline) return this.fromCache(revision, file, 'offline mode is on (HF_HUB_OFFLINE)')
    let meta: FileMetadata
    try {
      meta = await fetchMetadata(this.url(revision, file), {
        token: settings.token,
        timeoutS: settings.etagTimeoutS,
        signal: settings.signal,
      })
    } catch (err) {
      if (settings.signal?.aborted) throw err
      if (err instanceof HubResponseError && err.notFound) {
        if (err.errorCode === 'EntryNotFound' && err.commit && COMMIT.test(err.commit)) {
          await this.cache.markMissing(err.commit, file).catch(() => {})
          await this.cache.writeRef(revision, err.commit).catch(() => {})
          return { kind: 'missing', file, commit: err.commit }
        }
        throw notFound(this.repoId, revision, file, err)
      }
      if (err instanceof HubResponseError && err.auth) throw authError(this.repoId, err)
      // Unreachable, timed out, overloaded: the cache may have it.
      const reason =
        err instanceof HubResponseError ? `the Hub answered ${err.status}` : `the Hub is unreachable (${describe(err)})`
      return this.fromCache(revision, file, reason)
    }
    if (!settings.forceDownload) {
      const known = await cache.lookup(meta.commit, file)
      if (known !== undefined && known !== 'missing') {
        await cache.writeRef(revision, meta.commit).catch(() => {})
        return { kind: 'cached', file, commit: meta.commit, path: known.path }
      }
    }
    return { kind: 'download', file, commit: meta.commit, meta }
  }

  /** The cached copy of `file` for `revision`, when the Hub cannot be asked. */
  private async fromCache(revision: string, file: string, reason: string): Promise<Located> {
    const commit = await this.cache.commitOf(revision)
    const known = commit ? await this.cache.lookup(commit, file) : undefined
    if (commit && known === 'missing') return { kind: 'missing', file, commit }
    if (commit && known !== undefined && known !== 'missing') return { kind: 'cached', file, commit, path: known.path }
    if (this.settings.offline) {
      throw new NexttokenError(
        'ERR_MODEL_NOT_FOUND',
        `${this.repoId}: ${file} (revision ${revision}) is not in the cache at ${this.settings.cacheDir}, and ${reason}: download it once with the network on`,
      )
    }
    throw new NexttokenError(
      'ERR_NETWORK',
      `${this.repoId}: ${reason}, and ${file} (revision ${revision}) is not in the cache at ${this.settings.cacheDir}; set HF_HUB_OFFLINE=1 to use only the cache`,
    )
  }

  /**
   * Downloads a located file into the cache: a unique `.incomplete` file next to the blob,
   * checked (size, and sha256 for LFS files), then renamed into place, and linked from the
   * snapshot. An abort or a failure leaves no blob under its final name.
   */
  async fetch(located: Extract<Located, { kind: 'download' }>, onBytes: (loaded: number) => void): Promise<string> {
    const { cache, settings } = this
    const { meta, file, commit } = located
    const blob = cache.blob(meta.etag)
    await fs.mkdir(dirname(blob), { recursive: true })
    await tagCacheDir(settings.cacheDir)
    await cache.writeRef(settings.revision, commit)
    const have = !settings.forceDownload && (await fs.stat(blob).catch(() => undefined))
    if (!have) {
      const incomplete = cache.incomplete(meta.etag)
      try {
        await download(meta.location, incomplete, {
          hub: settings.endpoint,
          token: settings.token,
          timeoutS: settings.downloadTimeoutS,
          deadlineS: settings.downloadDeadlineS,
          signal: settings.signal,
          size: meta.size,
          sha256: /^[0-9a-f]{64}$/.test(meta.etag) ? meta.etag : undefined,
          onBytes,
        })
        await fs.rename(incomplete, blob)
      } catch (err) {
        throw downloadError(this.repoId, file, err)
      } finally {
        await fs.rm(incomplete, { force: true })
      }
    }
    return cache.link(commit, file, blob)
  }
}

function describe(err: unknown): string {
  const { code, cause } = (err ?? {}) as { code?: unknown; cause?: { code?: string; message?: string } }
  // A system error's code (ECONNREFUSED, ECONNRESET, ENOTFOUND, EAI_AGAIN...), not ours (ERR_...).
  if (!(err instanceof NexttokenError) && typeof code === 'string' && /^E(?!RR_)[A-Z]+(_[A-Z]+)*$/.test(code))
    return code
  return cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err))
}

/** A failed download as a coded error (a dropped connection, a redirect loop, an error status). */
function downloadError(repoId: string, file: string, err: unknown): NexttokenError {
  if (err instanceof NexttokenError) return err // our own checks (size, sha256), and AbortError
  if (err instanceof HubResponseError && err.auth) return authError(repoId, err)
  const why = err instanceof HubResponseError ? err.message : describe(err)
  return new NexttokenError('ERR_NETWORK', `${repoId}: downloading ${file} failed: ${why}`)
}

function notFound(repoId: string, revision: string, file: string, err: HubResponseError): NexttokenError {
  const what =
    err.errorCode === 'RevisionNotFound'
      ? `revision '${revision}' does not exist in ${repoId}`
      : err.errorCode === 'EntryNotFound'
        ? `${repoId} has no file ${file} at revision '${revision}'`
        : `repository '${repoId}' was not found on the Hub (or it is private: pass a token)`
  return new NexttokenError('ERR_MODEL_NOT_FOUND', what)
}

function authError(repoId: string, err: HubResponseError): NexttokenError {
  const gated = err.errorCode === 'GatedRepo'
  return new NexttokenError(
    'ERR_HUB_AUTH',
    `${repoId} ${gated ? 'is gated: accept its conditions on the Hub, then' : `refused access (HTTP ${err.status}):`} pass a token with access to it (the token option, HF_TOKEN, or \`hf auth login\`)`,
  )
}
