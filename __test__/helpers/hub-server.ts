// A stand-in for the Hugging Face Hub on 127.0.0.1, answering `/{repo}/resolve/{revision}/{file}`
// as the Hub does for the clients under test (ours, and Python's huggingface_hub):
// - small (git) files: 200 with `ETag` (the git blob sha1, quoted, sometimes weak), `X-Repo-Commit`;
//   requests for a renamed repo get a relative 307 to the canonical name with a query string;
// - LFS files (weights): a 302 to a "CDN" on another port with `X-Linked-Etag` (the sha256),
//   `X-Linked-Size` and `X-Repo-Commit`; the CDN's own ETag is not the file's, it serves `Range`
//   requests, and it records any `Authorization` header it receives (it must never get one);
// - errors by `X-Error-Code`: RepoNotFound (401), RevisionNotFound / EntryNotFound (404, the
//   latter with `X-Repo-Commit`), GatedRepo (401 without the right token).
// Faults can be injected per file: a connection dropped after some bytes, a slow transfer, 500s.
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'

import { TINY_MODEL } from './fixtures'

export interface HubRepo {
  /** Branches and tags to commits. */
  refs: Record<string, string>
  /** Files of each commit. */
  commits: Record<string, Record<string, Buffer>>
  /** A token that must come with every request (a gated repo). */
  gatedToken?: string
  /** Other names that redirect here (the Hub's `gpt2` -> `openai-community/gpt2`). */
  aliases?: string[]
}

export interface RequestRecord {
  server: 'hub' | 'cdn'
  method: string
  path: string
  authorization: string | undefined
  range: string | undefined
}

/** Git's blob id: the etag the Hub gives files stored in git rather than LFS. */
function gitSha1(content: Buffer): string {
  return createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex')
}

const sha256 = (content: Buffer) => createHash('sha256').update(content).digest('hex')
const isLfs = (file: string) => /\.(safetensors|bin)$/.test(file)

/** A commit id made from its files, so that equal trees give equal commits. */
export function commitOf(files: Record<string, Buffer>, salt = ''): string {
  const hash = createHash('sha1').update(salt)
  for (const [name, content] of Object.entries(files).sort()) hash.update(name).update(sha256(content))
  return hash.digest('hex')
}

export class HubServer {
  readonly requests: RequestRecord[] = []
  /** `file` -> bytes after which the next transfer of it is cut (once). */
  readonly dropAfter = new Map<string, number>()
  /** `file` -> milliseconds between 64 KiB chunks of its transfers. */
  readonly slow = new Map<string, number>()
  /** Files whose every byte has been sent by some transfer (a test clears what it watches). */
  readonly completed = new Set<string>()
  /** When set, every request to the Hub (not the CDN) is answered 500. */
  failing = false
  private hub!: Server
  private cdn!: Server
  hubUrl = ''
  cdnUrl = ''
  /** sha256 -> content, for the CDN. */
  private blobs = new Map<string, { file: string; content: Buffer }>()

  constructor(readonly repos: Record<string, HubRepo>) {
    for (const repo of Object.values(repos)) {
      for (const files of Object.values(repo.commits)) {
        for (const [file, content] of Object.entries(files)) {
          if (isLfs(file)) this.blobs.set(sha256(content), { file, content })
        }
      }
    }
  }

  async start(): Promise<this> {
    this.hub = createServer((req, res) => this.answerHub(req, res))
    this.cdn = createServer((req, res) => this.answerCdn(req, res))
    this.hubUrl = await listen(this.hub)
    this.cdnUrl = await listen(this.cdn)
    return this
  }

  async stop(): Promise<void> {
    for (const server of [this.hub, this.cdn]) {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  }

  /** Requests since `from` (an index into `requests`). */
  since(from: number): RequestRecord[] {
    return this.requests.slice(from)
  }

  private record(server: 'hub' | 'cdn', req: IncomingMessage) {
    this.requests.push({
      server,
      method: req.method ?? '',
      path: req.url ?? '',
      authorization: req.headers.authorization,
      range: req.headers.range,
    })
  }

  private answerHub(req: IncomingMessage, res: ServerResponse) {
    this.record('hub', req)
    if (this.failing) return res.writeHead(500).end()
    const url = new URL(req.url ?? '/', this.hubUrl)
    const match = /^\/(.+?)\/resolve\/([^/]+)\/(.+)$/.exec(decodeURIComponent(url.pathname))
    if (!match) return res.writeHead(404).end()
    const [, repoId, revision, file] = match
    const canonical = this.canonical(repoId)
    const repo = canonical && this.repos[canonical]
    if (!repo) return error(res, 401, 'RepoNotFound')
    if (canonical !== repoId) {
      // A renamed repo: a relative redirect, with a query string, as the Hub sends.
      res.writeHead(307, { location: `/${canonical}/resolve/${revision}/${file}?renamed=1` })
      return res.end()
    }
    if (repo.gatedToken && req.headers.authorization !== `Bearer ${repo.gatedToken}`) {
      return error(res, 401, 'GatedRepo')
    }
    const commit = repo.refs[revision] ?? (repo.commits[revision] ? revision : undefined)
    if (!commit) return error(res, 404, 'RevisionNotFound')
    const content = repo.commits[commit][file]
    if (!content) return error(res, 404, 'EntryNotFound', { 'x-repo-commit': commit })
    if (isLfs(file)) {
      const hash = sha256(content)
      res.writeHead(302, {
        location: `${this.cdnUrl}/blobs/${hash}?signature=abc`,
        'x-repo-commit': commit,
        'x-linked-etag': `"${hash}"`,
        'x-linked-size': String(content.length),
        etag: '"the-pointer-file-etag"',
      })
      return res.end()
    }
    const etag = gitSha1(content)
    // Weak etags occur too: clients strip the prefix.
    const headers = { 'x-repo-commit': commit, etag: file.endsWith('.txt') ? `W/"${etag}"` : `"${etag}"` }
    this.send(req, res, file, content, headers)
  }

  private answerCdn(req: IncomingMessage, res: ServerResponse) {
    this.record('cdn', req)
    const hash = /^\/blobs\/([0-9a-f]{64})/.exec(req.url ?? '')?.[1]
    const blob = hash && this.blobs.get(hash)
    if (!blob) return res.writeHead(404).end()
    // The CDN's own ETag is not the file's sha256: clients must use X-Linked-Etag.
    this.send(req, res, blob.file, blob.content, { etag: '"cdn-etag-0001"', 'accept-ranges': 'bytes' })
  }

  private canonical(repoId: string): string | undefined {
    if (this.repos[repoId]) return repoId
    return Object.keys(this.repos).find((name) => this.repos[name].aliases?.includes(repoId))
  }

  /** Sends `content` (or its requested range), honouring the faults set for `file`. */
  private send(
    req: IncomingMessage,
    res: ServerResponse,
    file: string,
    content: Buffer,
    headers: Record<string, string>,
  ) {
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '')
    const start = range ? Number(range[1]) : 0
    const body = content.subarray(start)
    res.writeHead(range ? 206 : 200, {
      ...headers,
      'content-length': String(body.length),
      ...(range ? { 'content-range': `bytes ${start}-${content.length - 1}/${content.length}` } : {}),
    })
    if (req.method === 'HEAD') return res.end()
    const drop = this.dropAfter.get(file)
    if (drop !== undefined) this.dropAfter.delete(file)
    const delay = this.slow.get(file)
    const chunk = 64 * 1024
    let sent = 0
    const next = () => {
      if (res.destroyed) return
      // The connection drops mid-file: closed after what was sent (a FIN, so those bytes arrive).
      if (drop !== undefined && sent >= drop) return res.socket?.end()
      if (sent >= body.length) {
        this.completed.add(file)
        return res.end()
      }
      const end = Math.min(body.length, sent + chunk, drop ?? Number.POSITIVE_INFINITY)
      res.write(body.subarray(sent, end))
      sent = end
      if (delay) setTimeout(next, delay)
      else setImmediate(next)
    }
    next()
  }
}

function error(res: ServerResponse, status: number, code: string, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'x-error-code': code, 'x-error-message': code, ...headers })
  res.end()
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** The fixture model's files as a Hub repo holds them. */
export function tinyModelFiles(names: string[]): Record<string, Buffer> {
  return Object.fromEntries(names.map((name) => [name, readFileSync(join(TINY_MODEL, name))]))
}
