// POST /v1/chat/completions. GPT-2 has no chat template, so the messages become plain text, one
// line per message: "System: ...", "User: ...", "Assistant: ...", then "Assistant:" for the reply,
// which ends where the model starts the next "\nUser:" turn (a stop string, with any of the
// request's). Logprobs come in the chat shape.
import type * as native from '../../binding'
import type { GenerateStep } from '../generate-options'
import type { Gpt2 } from '../gpt2'
import { runChoices, runToEnd, startChoices } from './choices'
import { badField } from './errors'
import { boolean, fieldsOf, integer, string } from './fields'
import type { Exchange, Route } from './http'
import { chatLogprobs, MAX_LOGPROBS, stepLogprob } from './logprobs'
import { checkModel, finishReason, responseId, STREAM_FIELDS, streaming, usage } from './request'
import { SAMPLING_FIELDS, samplingOptions } from './sampling'

const FIELDS = [
  ...STREAM_FIELDS,
  ...SAMPLING_FIELDS,
  'messages',
  'max_tokens',
  'max_completion_tokens',
  'logprobs',
  'top_logprobs',
]

/** How each role's messages are introduced (`developer` is OpenAI's newer name for `system`). */
const ROLES: Record<string, string> = { system: 'System', developer: 'System', user: 'User', assistant: 'Assistant' }

/** Where the reply ends: the model beginning the user's next turn. */
const CHAT_STOP = '\nUser:'

/** A message's text: a string, or the text parts of a list. */
function content(value: unknown, name: string): string {
  if (!Array.isArray(value)) return string(value, name)
  return value
    .map((part, i) => {
      const fields = fieldsOf(part, ['type', 'text'])
      if (fields.type !== 'text') throw badField(`${name}[${i}].type`, "must be 'text': GPT-2 reads text only")
      return string(fields.text, `${name}[${i}].text`)
    })
    .join('')
}

/** The messages as GPT-2's plain prompt. */
function chatPrompt(messages: unknown): string {
  if (!Array.isArray(messages) || messages.length === 0) throw badField('messages', 'must be a non-empty list')
  const lines = messages.map((message, i) => {
    const fields = fieldsOf(message, ['role', 'content', 'name'])
    if (fields.name !== undefined) string(fields.name, `messages[${i}].name`) // a speaker's name: checked, not shown
    const role = ROLES[string(fields.role, `messages[${i}].role`)]
    if (!role) throw badField(`messages[${i}].role`, `must be one of ${Object.keys(ROLES).join(', ')}`)
    return `${role}: ${content(fields.content ?? '', `messages[${i}].content`)}\n`
  })
  return `${lines.join('')}Assistant:`
}

function read(fields: Record<string, unknown>) {
  const prompt = chatPrompt(fields.messages)
  const logprobs = fields.logprobs === undefined ? false : boolean(fields.logprobs, 'logprobs')
  const top = fields.top_logprobs === undefined ? 0 : integer(fields.top_logprobs, 'top_logprobs')
  if (top > MAX_LOGPROBS) throw badField('top_logprobs', `must be at most ${MAX_LOGPROBS}`)
  if (top > 0 && !logprobs) throw badField('top_logprobs', 'needs logprobs: true')
  const limit = fields.max_completion_tokens ?? fields.max_tokens
  const name = fields.max_completion_tokens === undefined ? 'max_tokens' : 'max_completion_tokens'
  const options = samplingOptions(fields)
  options.stop = [CHAT_STOP, ...((options.stop as string[] | undefined) ?? [])]
  if (limit !== undefined) options.maxNewTokens = integer(limit, name, 1)
  if (top > 0) options.topAlternatives = top
  return { prompt, logprobs, n: options.numReturnSequences ?? 1, options, ...streaming(fields) }
}

type Request = ReturnType<typeof read>

/** A request read and started: what its answer is made of. */
interface Job {
  request: Request
  promptTokens: number
  rows: native.NativeGeneration[]
  /** A response object (or stream chunk) holding `choices`, under `object`. */
  chunk: (object: string, choices: unknown[], extra?: object) => object
  /** Steps' logprobs in the chat shape, when asked for. */
  logprobs: (steps: GenerateStep[]) => { content: ReturnType<typeof chatLogprobs> } | null
}

/** The whole answer, once every choice has ended. */
async function answer(job: Job, signal: AbortSignal) {
  const { results, steps } = await runToEnd(job.rows, job.request.n, signal)
  const choices = results.map((result, index) => ({
    index,
    message: { role: 'assistant', content: result.completion },
    logprobs: job.logprobs(steps[index]),
    finish_reason: finishReason(result.stopReason),
  }))
  return job.chunk('chat.completion', choices, { usage: usage(job.promptTokens, results) })
}

/** The answer as events: each choice's role, a delta per token, each choice's end, the usage. */
async function streamAnswer(job: Job, exchange: Exchange) {
  const events = exchange.events()
  const extra = job.request.includeUsage ? { usage: null } : {}
  const send = (index: number, delta: object, logprobs: unknown, reason: string | null) =>
    events.send(job.chunk('chat.completion.chunk', [{ index, delta, logprobs, finish_reason: reason }], extra))
  for (const index of job.rows.keys()) await send(index, { role: 'assistant', content: '' }, null, null)
  const results = await runChoices(
    job.rows,
    job.request.n,
    exchange.signal,
    async (choice, step) => {
      // Without logprobs, a token whose text is held back has nothing to send yet.
      if (step.text !== '' || job.request.logprobs)
        await send(choice.index, { content: step.text }, job.logprobs([step]), null)
    },
    true,
  )
  for (const [index, result] of results.entries()) await send(index, {}, null, finishReason(result.stopReason))
  if (job.request.includeUsage)
    await events.send(job.chunk('chat.completion.chunk', [], { usage: usage(job.promptTokens, results) }))
  events.end()
}

/** The route, serving `model` under `name`. */
export function chatCompletions(model: Gpt2, name: string): Route {
  return async (exchange: Exchange) => {
    const fields = fieldsOf(exchange.body, FIELDS)
    checkModel(fields.model, name)
    const request = read(fields)
    const ids = await model.toIds(request.prompt)
    const rows = startChoices(model, [ids], request.options)
    try {
      const { id, created } = responseId('chatcmpl')
      const job: Job = {
        request,
        promptTokens: ids.length,
        rows,
        chunk: (object, choices, extra = {}) => ({ id, object, created, model: name, choices, ...extra }),
        logprobs: (steps) =>
          request.logprobs ? { content: chatLogprobs(steps.map((step) => stepLogprob(model, step))) } : null,
      }
      if (request.stream) await streamAnswer(job, exchange)
      else exchange.json(await answer(job, exchange.signal))
    } finally {
      // However the request ended (answered, failed, its client gone), none of its generations runs on.
      for (const row of rows) row.cancel()
    }
  }
}
