// A stand-in Hub on a raw socket (node:net, not node:http), so that an answer can do what no
// well-behaved server does: send a body larger than it announced, trickle it, send a long body
// with an error status and close the connection at once. It serves the tiny fixture as every repo
// at every revision (`/{org}/{name}/resolve/{revision}/{file}`), and `faults` changes the answers
// of one repo.
import { createHash } from 'node:crypto'
import { createServer, type Server, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'

import { tinyModelFiles } from './hub-server'

export const FILES = tinyModelFiles(['config.json', 'model.safetensors', 'generation_config.json', 'tokenizer.json'])
export const COMMIT = 'c0ffee0000000000000000000000000000000002'
export const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')
export const gitSha1 = (data: Buffer) => createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex')
const isLfs = (file: string) => file.endsWith('.safetensors')

/** One answer, as the socket sends it. */
export interface RawReply {
  status: number
  headers: Record<string, string>
  /** Sent after the headers on a GET; a function writes the body itself (and ends the socket). */
  body: Buffer | ((socket: Socket) => void)
  /** Keep the connection open after the body (the default closes it: `connection: close`). */
  keepAlive?: boolean
}

export interface RawRequest {
  method: string
  repo: string
  revision: string
  file: string
}

/** Changes the normal answer to a request of the repo it is set for. */
export type RawFault = (request: RawRequest, reply: RawReply) => RawReply

/** The Hub's normal answer for `file` (404 EntryNotFound for a file the fixture lacks). */
export function normalReply(file: string, method: string, files: Record<string, Buffer> = FILES): RawReply {
  const content = files[file]
  if (!content) {
    return {
      status: 404,
      headers: { 'x-error-code': 'EntryNotFound', 'x-repo-commit': COMMIT, 'content-length': '0' },
      body: Buffer.alloc(0),
    }
  }
  const headers: Record<string, string> = {
    'x-repo-commit': COMMIT,
    'content-length': String(content.length),
    etag: isLfs(file) ? '"pointer-etag"' : `"${gitSha1(content)}"`,
  }
  if (isLfs(file))
    Object.assign(headers, { 'x-linked-etag': `"${sha256(content)}"`, 'x-linked-size': String(content.length) })
  return { status: 200, headers, body: method === 'HEAD' ? Buffer.alloc(0) : content }
}

/** The status line's reason phrase does not matter to clients: one for all. */
function head(reply: RawReply): string {
  const all = { ...(reply.keepAlive ? {} : { connection: 'close' }), ...reply.headers }
  const lines = Object.entries(all).map(([k, v]) => `${k}: ${v}`)
  return `HTTP/1.1 ${reply.status} Status\r\n${lines.join('\r\n')}\r\n\r\n`
}

export class RawHub {
  readonly faults = new Map<string, RawFault>()
  readonly requests: RawRequest[] = []
  private server!: Server
  private readonly sockets = new Set<Socket>()
  url = ''

  async start(): Promise<this> {
    this.server = createServer((socket) => this.accept(socket))
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
    return this
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy()
    await new Promise((resolve) => this.server.close(resolve))
  }

  private accept(socket: Socket) {
    this.sockets.add(socket)
    socket.on('close', () => this.sockets.delete(socket))
    socket.on('error', () => {})
    let received = ''
    // One request after another on a kept-alive connection; a body-less GET or HEAD each.
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1')
      for (let end = received.indexOf('\r\n\r\n'); end >= 0; end = received.indexOf('\r\n\r\n')) {
        const request = received.slice(0, end)
        received = received.slice(end + 4)
        this.answer(socket, request)
      }
    })
  }

  private answer(socket: Socket, request: string) {
    const [method, url] = request.split(' ')
    const match = /^\/(.+?\/.+?)\/resolve\/([^/]+)\/(.+)$/.exec(url.split('?')[0])
    if (!match) return socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n')
    const [repo, revision, file] = match.slice(1).map(decodeURIComponent)
    const seen = { method, repo, revision, file }
    this.requests.push(seen)
    const fault = this.faults.get(repo) ?? ((_request, reply) => reply)
    const reply = fault(seen, normalReply(file, method))
    socket.write(head(reply))
    if (method === 'HEAD') {
      if (!reply.keepAlive) socket.end()
      return
    }
    if (typeof reply.body === 'function') return reply.body(socket)
    if (reply.keepAlive) socket.write(reply.body)
    else socket.end(reply.body)
  }
}

/** A body writer: `total` bytes of `byte`, in 64 KiB writes that wait for the socket to drain,
 * stopping when the peer goes away. Counts what it wrote into `sent.bytes`. */
export function endless(total: number, sent: { bytes: number }, byte = 0x61): (socket: Socket) => void {
  const chunk = Buffer.alloc(64 * 1024, byte)
  return (socket) => {
    const next = () => {
      while (!socket.destroyed && sent.bytes < total) {
        const piece = chunk.subarray(0, Math.min(chunk.length, total - sent.bytes))
        sent.bytes += piece.length
        if (!socket.write(piece)) return socket.once('drain', next)
      }
      if (!socket.destroyed) socket.end()
    }
    socket.on('close', () => socket.removeAllListeners('drain'))
    next()
  }
}

/** A body writer: `content` a few bytes every `everyMs`, then the end. */
export function trickle(content: Buffer, everyMs: number, bytesEach = 1): (socket: Socket) => void {
  return (socket) => {
    let at = 0
    const timer = setInterval(() => {
      if (socket.destroyed || at >= content.length) {
        clearInterval(timer)
        if (!socket.destroyed) socket.end()
        return
      }
      socket.write(content.subarray(at, at + bytesEach))
      at += bytesEach
    }, everyMs)
    socket.on('close', () => clearInterval(timer))
  }
}
