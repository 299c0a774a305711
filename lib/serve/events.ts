// Server-sent events as OpenAI streams them: one `data: <json>` event per chunk, `data: [DONE]`
// last. A chunk waits for the socket to drain, so a slow reader slows its own generation (which
// runs one token ahead of what was sent) instead of buffering it.
import { once } from 'node:events'
import type { ServerResponse } from 'node:http'

export class EventStream {
  constructor(
    private readonly res: ServerResponse,
    private readonly signal: AbortSignal,
  ) {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' })
  }

  /** Sends one event; resolves once the socket can take more (rejects if the client leaves first). */
  async send(value: unknown): Promise<void> {
    if (!this.res.write(`data: ${JSON.stringify(value)}\n\n`)) await once(this.res, 'drain', { signal: this.signal })
  }

  /** Ends the stream as OpenAI's clients expect. */
  end(): void {
    this.res.end('data: [DONE]\n\n')
  }
}
