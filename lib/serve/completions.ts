// POST /v1/completions, as OpenAI's legacy completions and vLLM's: `n` continuations of each
// prompt, `echo` (the prompt first, its tokens scored by `model.score`, the first one null),
// `logprobs` (the k most likely tokens at every position), streamed or not.
import type { GenerateResult } from '../generate-options'
import type { Gpt2 } from '../gpt2'
import type * as native from '../../binding'
import { type Choice, runChoices, runToEnd, startChoices } from './choices'
import { badField } from './errors'
import { boolean, fieldsOf, integer } from './fields'
import type { Exchange, Route } from './http'
import {
  characters,
  completionLogprobs,
  MAX_LOGPROBS,
  promptLogprobs,
  stepLogprob,
  type TokenLogprob,
} from './logprobs'
import { type Prompt, readPrompts } from './prompts'
import { checkModel, finishReason, responseId, STREAM_FIELDS, streaming, usage } from './request'
import { SAMPLING_FIELDS, samplingOptions } from './sampling'

const FIELDS = [...STREAM_FIELDS, ...SAMPLING_FIELDS, 'prompt', 'max_tokens', 'best_of', 'logprobs', 'echo', 'suffix']

function read(fields: Record<string, unknown>) {
  if (fields.prompt === undefined) throw badField('prompt', 'is required')
  if (fields.suffix !== undefined && fields.suffix !== '')
    throw badField('suffix', 'is not supported: GPT-2 does not fill in the middle')
  const echo = fields.echo === undefined ? false : boolean(fields.echo, 'echo')
  const maxTokens = fields.max_tokens === undefined ? undefined : integer(fields.max_tokens, 'max_tokens')
  if (maxTokens === 0 && !echo) throw badField('max_tokens', 'may be 0 only with echo (to score the prompt)')
  const logprobs = fields.logprobs === undefined ? undefined : integer(fields.logprobs, 'logprobs')
  if (logprobs !== undefined && logprobs > MAX_LOGPROBS) throw badField('logprobs', `must be at most ${MAX_LOGPROBS}`)
  const options = { ...samplingOptions(fields), maxNewTokens: maxTokens || undefined }
  const n = options.numReturnSequences ?? 1
  if (fields.best_of !== undefined && integer(fields.best_of, 'best_of', 1) !== n)
    throw badField('best_of', 'is not supported (every continuation is returned): leave it out or make it equal to n')
  if (logprobs) options.topAlternatives = logprobs
  return { echo, logprobs, n, generates: maxTokens !== 0, options, ...streaming(fields) }
}

type Request = ReturnType<typeof read>

/** A request read: its prompts tokenized (and scored, for echo with logprobs) and its choices. */
interface Job {
  request: Request
  prompts: Prompt[]
  /** With echo and logprobs: each prompt's tokens, scored. */
  scored: TokenLogprob[][] | undefined
  choices: Choice[]
  /** A response object (or stream chunk) holding `choices`. */
  chunk: (choices: unknown[], extra?: object) => object
}

/** The echoed prompts' tokens, scored when logprobs are asked for. */
async function echoed(model: Gpt2, request: Request, prompts: Prompt[]): Promise<TokenLogprob[][] | undefined> {
  const { echo, logprobs } = request
  if (!echo || logprobs === undefined) return undefined
  return Promise.all(prompts.map((prompt) => promptLogprobs(model, prompt.ids, logprobs)))
}

/** Where a choice's first token starts in prompt + completion: the echo starts at 0, a completion after its prompt. */
const startOffset = (job: Job, choice: Choice) => (job.request.echo ? 0 : characters(job.prompts[choice.prompt].text))

const echoText = (job: Job, choice: Choice) => (job.request.echo ? job.prompts[choice.prompt].text : '')

const promptTokens = (job: Job) => job.prompts.reduce((sum, p) => sum + p.ids.length, 0)

/** A choice's end: `length` when nothing was generated (max_tokens 0). */
const finish = (result: GenerateResult | undefined) => (result ? finishReason(result.stopReason) : 'length')

/** The whole answer, once every choice has ended. */
async function answer(model: Gpt2, job: Job, rows: native.NativeGeneration[], signal: AbortSignal) {
  const { request } = job
  const { results, steps } = request.generates ? await runToEnd(rows, request.n, signal) : {}
  const logprobs = (choice: Choice) => {
    const generated = (steps?.[choice.index] ?? []).map((step) => stepLogprob(model, step))
    return completionLogprobs([...(job.scored?.[choice.prompt] ?? []), ...generated], startOffset(job, choice))
  }
  const choices = job.choices.map((choice) => {
    const result = results?.[choice.index]
    return {
      index: choice.index,
      text: echoText(job, choice) + (result?.completion ?? ''),
      logprobs: request.logprobs === undefined ? null : logprobs(choice),
      finish_reason: finish(result),
    }
  })
  return job.chunk(choices, { usage: usage(promptTokens(job), results) })
}

/** The answer as events: each choice's echo, a chunk per token, each choice's end, the usage. */
async function streamAnswer(model: Gpt2, job: Job, rows: native.NativeGeneration[], exchange: Exchange) {
  const { request } = job
  const events = exchange.events()
  // Where each choice's next token starts, in characters of prompt + completion.
  const offsets = job.choices.map((choice) => startOffset(job, choice))
  const send = (choice: Choice, text: string, tokens: TokenLogprob[] | null, reason: string | null) => {
    const logprobs = tokens && completionLogprobs(tokens, offsets[choice.index])
    offsets[choice.index] += (tokens ?? []).reduce((sum, t) => sum + characters(t.token), 0)
    const chunk = job.chunk(
      [{ index: choice.index, text, logprobs, finish_reason: reason }],
      request.includeUsage ? { usage: null } : {},
    )
    return events.send(chunk)
  }
  const withLogprobs = request.logprobs !== undefined
  if (request.echo)
    for (const choice of job.choices)
      await send(choice, echoText(job, choice), withLogprobs ? (job.scored?.[choice.prompt] ?? []) : null, null)
  const results = request.generates
    ? await runChoices(
        rows,
        request.n,
        exchange.signal,
        async (choice, step) => {
          // Without logprobs, a token whose text is held back (a partial character, a possible
          // stop string) has nothing to send yet.
          if (step.text === '' && !withLogprobs) return
          await send(choice, step.text, withLogprobs ? [stepLogprob(model, step)] : null, null)
        },
        true,
      )
    : undefined
  for (const choice of job.choices) await send(choice, '', null, finish(results?.[choice.index]))
  if (request.includeUsage) await events.send(job.chunk([], { usage: usage(promptTokens(job), results) }))
  events.end()
}

/** The route, serving `model` under `name`. */
export function completions(model: Gpt2, name: string): Route {
  return async (exchange: Exchange) => {
    const fields = fieldsOf(exchange.body, FIELDS)
    checkModel(fields.model, name)
    const request = read(fields)
    const prompts = await readPrompts(model, fields.prompt)
    // Started first, so that a refusal (a full queue) answers before anything is scored or sent.
    const ids = prompts.map((p) => p.ids)
    const rows = request.generates ? startChoices(model, ids, request.options) : []
    try {
      const { id, created } = responseId('cmpl')
      const job: Job = {
        request,
        prompts,
        scored: await echoed(model, request, prompts),
        choices: Array.from({ length: prompts.length * request.n }, (_, index) => ({
          index,
          prompt: Math.floor(index / request.n),
        })),
        chunk: (choices, extra = {}) => ({ id, object: 'text_completion', created, model: name, choices, ...extra }),
      }
      if (request.stream) await streamAnswer(model, job, rows, exchange)
      else exchange.json(await answer(model, job, rows, exchange.signal))
    } finally {
      // However the request ended (answered, failed, its client gone), none of its generations runs on.
      for (const row of rows) row.cancel()
    }
  }
}
