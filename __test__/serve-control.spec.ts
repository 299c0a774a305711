// The server under load and control: a full queue (429), a disconnect that frees its slot, a
// disposed model (503), the API key (401), and `nexttoken serve` itself.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import test from 'ava'
import OpenAI from 'openai'

import { Gpt2, serve } from '../index'
import { TINY_MODEL } from './helpers/fixtures'

const CLI = join(__dirname, '..', 'cli.js')
const clientOf = (url: string, apiKey = 'unused') => new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0 })

/** A stream that runs as long as the context allows (eos banned), once its first token has come. */
async function longStream(url: string) {
  const stream = await clientOf(url).completions.create({
    model: 'gpt2',
    prompt: 'Hi',
    max_tokens: 1000,
    stream: true,
    logit_bias: { 50256: -100 },
  })
  const iterator = stream[Symbol.asyncIterator]()
  await iterator.next()
  return { stream, iterator }
}

test('a full queue answers 429; a client that disconnects frees its slot', async (t) => {
  // One slot, no queue: one running generation fills the server.
  await using model = await Gpt2.fromPretrained(TINY_MODEL, { maxBatchSize: 1, maxQueueLength: 0 })
  await using server = await serve(model, { port: 0 })
  const client = clientOf(server.url)
  const { stream } = await longStream(server.url)
  const busy = await t.throwsAsync(client.completions.create({ model: 'gpt2', prompt: 'Hi', max_tokens: 2 }))
  t.true(busy instanceof OpenAI.RateLimitError, String(busy))
  t.is((busy as InstanceType<typeof OpenAI.APIError>).code, 'ERR_OVERLOADED')
  stream.controller.abort() // the client leaves mid-stream
  // The slot comes back within a token or so: a request is served again.
  for (let attempt = 0; ; attempt++) {
    try {
      const answer = await client.completions.create({ model: 'gpt2', prompt: 'Hi', max_tokens: 2 })
      t.is(answer.usage?.completion_tokens, 2)
      break
    } catch (err) {
      if (!(err instanceof OpenAI.RateLimitError) || attempt === 100) throw err
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }
})

test('a disposed model answers 503, on /health too', async (t) => {
  const model = await Gpt2.fromPretrained(TINY_MODEL)
  await using server = await serve(model, { port: 0 })
  await model.dispose()
  const error = await t.throwsAsync(clientOf(server.url).completions.create({ model: 'gpt2', prompt: 'Hi' }))
  t.is((error as InstanceType<typeof OpenAI.APIError>).status, 503)
  t.is((error as InstanceType<typeof OpenAI.APIError>).code, 'ERR_DISPOSED')
  t.is((await fetch(`${server.url}/health`)).status, 503)
})

test('with an API key, requests without it are 401s; /health stays open', async (t) => {
  await using model = await Gpt2.fromPretrained(TINY_MODEL)
  await using server = await serve(model, { port: 0, apiKey: 'secret' })
  const refused = await t.throwsAsync(clientOf(server.url, 'wrong').models.list())
  t.true(refused instanceof OpenAI.AuthenticationError)
  t.is((await clientOf(server.url, 'secret').models.list()).data.length, 1)
  t.is((await fetch(`${server.url}/health`)).status, 200)
})

test('closing the server ends its running streams', async (t) => {
  await using model = await Gpt2.fromPretrained(TINY_MODEL, { maxBatchSize: 1, maxQueueLength: 0 })
  const server = await serve(model, { port: 0 })
  const { iterator } = await longStream(server.url)
  await server.close()
  await t.throwsAsync(async () => {
    for (let next = await iterator.next(); !next.done; next = await iterator.next());
  })
  // The generation stopped: the model's one slot takes a new call.
  t.is((await model.generate('Hi', { maxNewTokens: 2 })).newIds.length, 2)
})

test('nexttoken serve listens until Ctrl-C, with --api-key and --served-model-name', async (t) => {
  const child = spawn(process.execPath, [
    CLI,
    'serve',
    '--model',
    TINY_MODEL,
    '--port',
    '0',
    '--api-key',
    'k',
    '--served-model-name',
    'tiny',
  ])
  let stderr = ''
  child.stderr.setEncoding('utf8')
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (data: string) => {
      stderr += data
      const found = /at (http:\/\/\S+)\/v1/.exec(stderr)
      if (found) resolve(found[1])
    })
    child.once('exit', () => reject(new Error(`exited: ${stderr}`)))
  })
  t.is(url.startsWith('http://127.0.0.1:'), true)
  const answer = await clientOf(url, 'k').completions.create({
    model: 'tiny',
    prompt: 'Hi',
    max_tokens: 3,
    temperature: 0,
  })
  t.is(answer.model, 'tiny')
  t.is(answer.usage?.completion_tokens, 3)
  child.kill('SIGINT')
  const [code] = await once(child, 'exit')
  t.is(code, 0)
})

test('serve refuses options it does not know or cannot use', async (t) => {
  await using model = await Gpt2.fromPretrained(TINY_MODEL)
  for (const options of [{ port: -1 }, { port: 1.5 }, { apiKey: '' }, { maxBodyBytes: 0 }, { prot: 8000 }, null]) {
    const error = await t.throwsAsync(serve(model, options as never))
    t.is((error as { code?: string }).code, 'ERR_INVALID_ARG', JSON.stringify(options))
  }
  t.is(((await t.throwsAsync(serve({} as Gpt2))) as { code?: string }).code, 'ERR_INVALID_ARG')
})
