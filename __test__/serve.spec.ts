// The OpenAI-compatible server, through the official `openai` client against a real server on a
// loopback port: completions equal to generate, streams equal to the whole answer, echo and
// logprobs equal to model.score and topAlternatives, the requests lm-evaluation-harness sends,
// and every error status.
import test from 'ava'
import OpenAI from 'openai'

import { type GenerateStep, Gpt2, serve } from '../index'
import { TINY_MODEL } from './helpers/fixtures'

const TEXT = "I am learning about generative ai and LLM's"
const model = Gpt2.fromPretrained(TINY_MODEL)
const server = model.then((m) => serve(m, { port: 0 }))
test.after.always(async () => (await server).close())

const client = async () => new OpenAI({ baseURL: `${(await server).url}/v1`, apiKey: 'unused', maxRetries: 0 })

/** The parts of the server's answers that the raw requests below read. */
interface Answer {
  choices: {
    text: string
    finish_reason: string
    logprobs: { token_logprobs: (number | null)[]; top_logprobs: (Record<string, number> | null)[] }
  }[]
  usage: { completion_tokens: number }
  error: { code: string; param: string | null }
  tokens: number[]
}

/** What the server answers to a raw request (for what the client cannot send). */
async function raw(path: string, init: RequestInit = {}) {
  const res = await fetch(`${(await server).url}${path}`, init)
  return { status: res.status, body: (await res.json()) as Answer }
}

const post = (path: string, body: unknown) => raw(path, { method: 'POST', body: JSON.stringify(body) })

test('a greedy completion is what generate gives', async (t) => {
  const m = await model
  const answer = await (await client()).completions.create({
    model: 'gpt2',
    prompt: TEXT,
    max_tokens: 12,
    temperature: 0,
  })
  const expected = await m.generate(TEXT, { maxNewTokens: 12 })
  t.is(answer.object, 'text_completion')
  t.is(answer.choices[0].text, expected.completion)
  t.is(answer.choices[0].finish_reason, 'length')
  t.deepEqual(answer.usage, { prompt_tokens: 12, completion_tokens: 12, total_tokens: 24 })
})

test('prompts as strings, ids and lists of ids give a choice each, in order', async (t) => {
  const m = await model
  const ids = [...m.tokenizer.encode('Hello there')]
  const answer = await (await client()).completions.create({
    model: 'gpt2',
    prompt: [ids, [40, 716]],
    max_tokens: 4,
    temperature: 0,
  })
  const expected = await m.generateBatch([ids, [40, 716]], { maxNewTokens: 4 })
  t.deepEqual(
    answer.choices.map((c) => [c.index, c.text]),
    expected.map((r, i) => [i, r.completion]),
  )
})

test('a stream joins into the whole answer, with the usage chunk last', async (t) => {
  const c = await client()
  const options = { model: 'gpt2', prompt: TEXT, max_tokens: 20, temperature: 0, stop: ['\n'] }
  const whole = await c.completions.create(options)
  const chunks = []
  for await (const chunk of await c.completions.create({
    ...options,
    stream: true,
    stream_options: { include_usage: true },
  }))
    chunks.push(chunk)
  const last = chunks.at(-1)
  t.deepEqual(last?.choices, [])
  t.deepEqual(last?.usage, whole.usage)
  t.is(chunks.flatMap((chunk) => chunk.choices.map((choice) => choice.text)).join(''), whole.choices[0].text)
  t.is(chunks.at(-2)?.choices[0].finish_reason, whole.choices[0].finish_reason)
})

test('echo with logprobs scores the prompt as model.score and the new tokens as topAlternatives', async (t) => {
  const m = await model
  const answer = await (await client()).completions.create({
    model: 'gpt2',
    prompt: TEXT,
    max_tokens: 3,
    temperature: 0,
    echo: true,
    logprobs: 5,
  })
  const scored = await m.score(TEXT, { topK: 5 })
  const steps: GenerateStep[] = []
  const generated = await m.generate(TEXT, { maxNewTokens: 3, topAlternatives: 5, onToken: (s) => steps.push(s) })
  const logprobs = answer.choices[0].logprobs
  t.is(answer.choices[0].text, TEXT + generated.completion)
  t.deepEqual(logprobs?.tokens, [...scored.tokens.map((s) => s.token), ...steps.map((s) => m.tokenizer.decode([s.id]))])
  t.deepEqual(logprobs?.token_logprobs, [...scored.tokens.map((s) => s.logprob), ...steps.map((s) => s.logprob)])
  const tops = [...scored.tokens.map((s) => s.alternatives), ...steps.map((s) => s.alternatives)]
  t.deepEqual(
    logprobs?.top_logprobs,
    tops.map((top, i) => (i === 0 ? null : Object.fromEntries((top ?? []).map((a) => [a.token, a.logprob])))),
  )
  // Offsets into prompt + completion: where each token's text starts.
  const texts = logprobs?.tokens ?? []
  t.deepEqual(
    logprobs?.text_offset,
    texts.map((_, i) => texts.slice(0, i).join('').length),
  )
})

test('a stream with echo and logprobs carries, chunk after chunk, the logprobs of the whole answer', async (t) => {
  const c = await client()
  const options = { model: 'gpt2', prompt: TEXT, max_tokens: 6, temperature: 0, echo: true, logprobs: 3 }
  const whole = (await c.completions.create(options)).choices[0].logprobs
  const joined = {
    tokens: [] as string[],
    token_logprobs: [] as unknown[],
    top_logprobs: [] as unknown[],
    text_offset: [] as number[],
  }
  for await (const chunk of await c.completions.create({ ...options, stream: true })) {
    const logprobs = chunk.choices[0].logprobs
    if (!logprobs) continue
    joined.tokens.push(...(logprobs.tokens ?? []))
    joined.token_logprobs.push(...(logprobs.token_logprobs ?? []))
    joined.top_logprobs.push(...(logprobs.top_logprobs ?? []))
    joined.text_offset.push(...(logprobs.text_offset ?? []))
  }
  t.is(joined.tokens.length, 12 + 6)
  t.deepEqual(joined, whole as unknown as typeof joined)
})

test("lm-evaluation-harness's loglikelihood requests get the context's continuation scored", async (t) => {
  const m = await model
  // As lm-eval's local-completions sends them: token ids, batched, one generated token.
  const pairs = [
    ['The capital of France is', ' Paris'],
    ['I am learning about', ' generative ai'],
  ].map(([context, continuation]) => ({
    context: [...m.tokenizer.encode(context)],
    whole: [...m.tokenizer.encode(context + continuation)],
  }))
  const { status, body } = await post('/v1/completions', {
    model: 'gpt2',
    prompt: pairs.map((p) => p.whole),
    max_tokens: 1,
    logprobs: 1,
    echo: true,
    temperature: 0,
    seed: 1234,
  })
  t.is(status, 200)
  for (const [i, { context, whole }] of pairs.entries()) {
    const lp = body.choices[i].logprobs
    // lm-eval's parse_logprobs: the continuation's tokens, the generated one left out.
    const continuation = lp.token_logprobs.slice(context.length, -1)
    const tops = lp.top_logprobs.slice(context.length, -1)
    const scored = (await m.score(whole, { topK: 1 })).tokens.slice(context.length)
    t.deepEqual(
      continuation,
      scored.map((s) => s.logprob),
    )
    const isGreedy = continuation.every((lp, j) => lp === Math.max(...Object.values(tops[j] ?? {})))
    t.is(
      isGreedy,
      scored.every((s) => s.alternatives?.[0].id === s.id),
    )
  }
})

test('max_tokens 0 with echo scores the prompt and generates nothing', async (t) => {
  const m = await model
  const { status, body } = await post('/v1/completions', { prompt: TEXT, max_tokens: 0, echo: true, logprobs: 0 })
  t.is(status, 200)
  t.is(body.choices[0].text, TEXT)
  t.is(body.choices[0].finish_reason, 'length')
  t.deepEqual(
    body.choices[0].logprobs.token_logprobs,
    (await m.score(TEXT)).tokens.map((s) => s.logprob),
  )
  t.is(body.usage.completion_tokens, 0)
})

test("lm-evaluation-harness's generate_until requests end at a stop string, as generate does", async (t) => {
  const m = await model
  const ids = [...m.tokenizer.encode(TEXT)]
  // A stop string the greedy completion does reach: its fourth token's text.
  const full = await m.generate(ids, { maxNewTokens: 30 })
  const stop = m.tokenizer.decode(full.newIds.slice(3, 4))
  const { body } = await post('/v1/completions', {
    model: 'gpt2',
    prompt: [ids],
    max_tokens: 30,
    temperature: 0,
    stop: [stop, '<|endoftext|>'],
    seed: 1234,
  })
  t.is(body.choices[0].text, full.completion.slice(0, full.completion.indexOf(stop)))
  t.is(body.choices[0].finish_reason, 'stop')
})

test('n sampled continuations with a seed are those of generate with numReturnSequences', async (t) => {
  const m = await model
  const answer = await (await client()).completions.create({
    model: 'gpt2',
    prompt: TEXT,
    max_tokens: 6,
    n: 3,
    temperature: 0.8,
    seed: 7,
  })
  const expected = await m.generate(TEXT, {
    maxNewTokens: 6,
    numReturnSequences: 3,
    doSample: true,
    temperature: 0.8,
    seed: 7,
  })
  t.deepEqual(
    answer.choices.map((c) => c.text),
    expected.map((r) => r.completion),
  )
})

test('a stream of several prompts and continuations joins, index by index, into the whole answer', async (t) => {
  const c = await client()
  const options = { model: 'gpt2', prompt: [TEXT, 'Hello there'], max_tokens: 8, n: 2, temperature: 0.8, seed: 3 }
  const whole = await c.completions.create(options)
  const texts = ['', '', '', '']
  const ends: (string | null)[] = []
  for await (const chunk of await c.completions.create({ ...options, stream: true })) {
    for (const choice of chunk.choices) {
      texts[choice.index] += choice.text
      if (choice.finish_reason) ends[choice.index] = choice.finish_reason
    }
  }
  t.is(whole.choices.length, 4)
  t.deepEqual(
    texts,
    whole.choices.map((choice) => choice.text),
  )
  t.deepEqual(
    ends,
    whole.choices.map((choice) => choice.finish_reason),
  )
})

test('models, health, tokenize and detokenize', async (t) => {
  const models = await (await client()).models.list()
  t.deepEqual(
    models.data.map((m) => m.id),
    ['gpt2'],
  )
  t.deepEqual(await raw('/health'), { status: 200, body: { status: 'ok' } })
  t.deepEqual(
    (await post('/tokenize', { prompt: TEXT })).body.tokens,
    [40, 716, 4673, 546, 1152, 876, 257, 72, 290, 27140, 44, 338],
  )
  t.deepEqual((await post('/detokenize', { tokens: [40, 716, 4673] })).body, { prompt: 'I am learning' })
})

test('bad requests are 400s in OpenAI’s shape, naming the field', async (t) => {
  const c = await client()
  const refused = async (body: Record<string, unknown>) => {
    const error = await t.throwsAsync(c.completions.create({ model: 'gpt2', prompt: TEXT, ...body } as never))
    t.true(error instanceof OpenAI.BadRequestError, String(error))
    return error as InstanceType<typeof OpenAI.BadRequestError>
  }
  const unknown = await refused({ max_new_tokens: 3, top_kk: 1 })
  t.is(unknown.message, '400 unknown fields: max_new_tokens, top_kk')
  t.is(unknown.type, 'invalid_request_error')
  t.is((await refused({ temperature: 'hot' })).param, 'temperature')
  t.is((await refused({ max_tokens: 0 })).param, 'max_tokens')
  t.is((await refused({ logprobs: 21 })).param, 'logprobs')
  t.is((await refused({ best_of: 3 })).param, 'best_of')
  t.is((await refused({ presence_penalty: 0.5 })).param, 'presence_penalty')
  t.is((await refused({ prompt: [] })).param, 'prompt')
  t.is((await refused({ temperature: -1 })).code, 'ERR_INVALID_ARG')
  t.is((await refused({ prompt: [[70000]] })).code, 'ERR_TOKEN_OUT_OF_RANGE')
  t.is((await refused({ prompt: ' hello'.repeat(1100) })).code, 'ERR_CONTEXT_OVERFLOW')
  const notJson = await raw('/v1/completions', { method: 'POST', body: '{"prompt":' })
  t.is(notJson.status, 400)
  t.is(notJson.body.error.code, 'invalid_json')
})

test('an unknown model or path is a 404, a wrong method a 405, an oversized body a 413', async (t) => {
  const error = await t.throwsAsync((await client()).completions.create({ model: 'gpt-4', prompt: TEXT }))
  t.true(error instanceof OpenAI.NotFoundError)
  t.is((await raw('/v1/embeddings', { method: 'POST', body: '{}' })).status, 404)
  t.is((await raw('/v1/completions')).status, 405)
  const big = await post('/v1/completions', { prompt: 'x'.repeat(3 * 1024 * 1024) })
  t.is(big.status, 413)
  t.is(big.body.error.code, 'body_too_large')
})

test('chat: the plain template, its stop, and logprobs in the chat shape', async (t) => {
  const m = await model
  const messages = [
    { role: 'system' as const, content: 'You are terse.' },
    { role: 'user' as const, content: 'Hello' },
  ]
  const answer = await (await client()).chat.completions.create({
    model: 'gpt2',
    messages,
    max_tokens: 8,
    temperature: 0,
    logprobs: true,
    top_logprobs: 2,
  })
  const steps: GenerateStep[] = []
  const expected = await m.generate('System: You are terse.\nUser: Hello\nAssistant:', {
    maxNewTokens: 8,
    stop: '\nUser:',
    topAlternatives: 2,
    onToken: (s) => steps.push(s),
  })
  const choice = answer.choices[0]
  t.is(answer.object, 'chat.completion')
  t.deepEqual(choice.message.role, 'assistant')
  t.is(choice.message.content, expected.completion)
  t.deepEqual(
    choice.logprobs?.content?.map((c) => [c.token, c.logprob, c.top_logprobs.map((a) => a.logprob)]),
    steps.map((s) => [m.tokenizer.decode([s.id]), s.logprob, s.alternatives?.map((a) => a.logprob)]),
  )
  t.is(answer.usage?.completion_tokens, expected.newIds.length)
})

test('a chat stream starts with the role and joins into the whole reply', async (t) => {
  const c = await client()
  const request = {
    model: 'gpt2',
    messages: [{ role: 'user' as const, content: TEXT }],
    max_tokens: 16,
    temperature: 0,
  }
  const whole = await c.chat.completions.create(request)
  const chunks = []
  for await (const chunk of await c.chat.completions.create({ ...request, stream: true })) chunks.push(chunk)
  t.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' })
  t.is(chunks.map((chunk) => chunk.choices[0].delta.content ?? '').join(''), whole.choices[0].message.content ?? '')
  t.is(chunks.at(-1)?.choices[0].finish_reason, whole.choices[0].finish_reason)
})

test('chat refuses what GPT-2 cannot read, naming the field', async (t) => {
  const refused = async (body: Record<string, unknown>) =>
    (await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'Hi' }], ...body })).body.error.param
  t.is(await refused({ messages: [{ role: 'tool', content: 'x' }] }), 'messages[0].role')
  t.is(await refused({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: 'x' }] }] }), 'image_url')
  t.is(await refused({ top_logprobs: 2 }), 'top_logprobs')
  t.is(await refused({ max_completion_tokens: 0 }), 'max_completion_tokens')
})
