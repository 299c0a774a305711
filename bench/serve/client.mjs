// What the load test and the benchmark share: the server child, and a streamed completion timed.
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))

/** Starts bench/serve/server.mjs on `dir`; `stats()` asks it for its event-loop delay and RSS. */
export async function startServer(dir, loadOptions = {}) {
  const child = fork(join(here, 'server.mjs'), [dir, JSON.stringify(loadOptions)], { stdio: 'inherit' })
  const [{ url }] = await once(child, 'message')
  return {
    url,
    stats: async () => {
      child.send('stats')
      return (await once(child, 'message'))[0]
    },
    stop: async () => {
      child.send('stop')
      await once(child, 'exit')
    },
  }
}

/** One streamed completion through `client` (the openai client): its text, tokens, and time to first token. */
export async function streamed(client, body) {
  const start = performance.now()
  let first
  let text = ''
  let tokens = 0
  const stream = await client.completions.create({ ...body, stream: true, stream_options: { include_usage: true } })
  for await (const chunk of stream) {
    if (chunk.usage) tokens = chunk.usage.completion_tokens
    const delta = chunk.choices[0]?.text ?? ''
    if (delta !== '' && first === undefined) first = performance.now() - start
    text += delta
  }
  return { text, tokens, ttftMs: first ?? performance.now() - start, ms: performance.now() - start }
}

export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
export const percentile = (xs, p) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]
