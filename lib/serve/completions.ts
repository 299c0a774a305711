// POST /v1/completions, as OpenAI's legacy completions and vLLM's: `n` continuations of each
// prompt, `echo` (the prompt first, its tokens scored by `model.score`, the first one null),
// `logprobs` (the k most likely tokens at every position), streamed or not.
import type { GenerateResult } from '../generate-options'
import type { Gpt2 } from '../gpt2'
import { type Choice, runChoices, runToEnd, startChoices } from './choices'
import { badField } from './errors'
import { boolean, fieldsOf, integer } from './fields'
import type { Exchange, Route } from './http'
import { characters, completionLogprobs, promptLogprobs, stepLogprob, type TokenLogprob } from './logprobs'
import { type Prompt, readPrompts } from './prompts'
import { checkModel, finishReason, responseId, STREAM_FIELDS, streaming, usage } from './request'
import { SAMPLING_FIELDS, samplingOptions } from './sampling'

const FIELDS = [...STREAM_FIELDS, ...SAMPLING_FIELDS, 'prompt', 'max_tokens', 'best_of', 'logprobs', 'echo', 'suffix']

/** The most `logprobs` a request may ask for (vLLM's default `max_logprobs`; OpenAI's is 5). */
const MAX_LOGPROBS = 20

function read(fields: Record<string, unknown>) {
  if (fields.prompt === undefined) throw badField('prompt', 'is required')
  if (fields.suffix !== undefined && fields.suffix !== '')
    throw badField('suffix', 'is not supported: GPT-2 does not fill in the middle')
  const echo = fields.echo === undefined ? false : boolean(fields.echo, 'echo')
  const maxTokens = fields.max_tokens === undefined ? undefined : integer(fields.max_tokens, 'max_tokens')
  if (maxTokens === 0 && !echo) throw badField('max_tokens', 'may be 0 only with echo (to score the prompt)')
  const logprobs = fields.logprobs === undefined ? undefined : integer(fields.logprobs, 'logprobs')
  if (logprobs !== undefined && logprobs > MAX_LOGPROBS) throw badField('logprobs', `must be at most ${MAX_LOGPROBS}`)
  const n = fields.n === undefined ? 1 : integer(fields.n, 'n', 1)
  if (fields.best_of !== undefined && integer(fields.best_of, 'best_of', 1) !== n)
    throw badField('best_of', 'is not supported (every continuation is returned): leave it out or make it equal to n')
  const options = { ...samplingOptions(fields), maxNewTokens: maxTokens || undefined }
  if (logprobs) options.topAlternatives = logprobs
  return { echo, logprobs, n, generates: maxTokens !== 0, options, ...streaming(fields) }
}

type Request = ReturnType<typeof read>

/** The echoed prompts' tokens, scored when logprobs are asked for. */
async function echoed(model: Gpt2, request: Request, prompts: Prompt[]): Promise<TokenLogprob[][] | undefined> {
  const { echo, logprobs } = request
  if (!echo || logprobs === undefined) return undefined
  return Promise.all(prompts.map((prompt) => promptLogprobs(model, prompt.ids, logprobs)))
}

/** A choice's logprobs, from `offset` characters into prompt + completion. */
function logprobsOf(
  request: Request,
  scored: TokenLogprob[][] | undefined,
  prompt: Prompt,
  choice: Choice,
  tokens: TokenLogprob[],
) {
  if (request.logprobs === undefined) return null
  const echoedTokens = scored?.[choice.prompt] ?? []
  return completionLogprobs([...echoedTokens, ...tokens], request.echo ? 0 : characters(prompt.text))
}

/** The route, serving `model` under `name`. */
export function completions(model: Gpt2, name: string): Route {
  return async (exchange: Exchange) => {
    const fields = fieldsOf(exchange.body, FIELDS)
    checkModel(fields.model, name)
    const request = read(fields)
    const prompts = await readPrompts(model, fields.prompt)
    const promptTokens = prompts.reduce((sum, p) => sum + p.ids.length, 0)
    const { id, created } = responseId('cmpl')
    const chunk = (choices: unknown[], extra: object = {}) => ({
      id,
      object: 'text_completion',
      created,
      model: name,
      choices,
      ...extra,
    })
    const choices = Array.from({ length: prompts.length * request.n }, (_, index) => ({
      index,
      prompt: Math.floor(index / request.n),
    }))
    // Started first, so that a refusal (a full queue) answers before anything is sent or scored.
    const rows = request.generates
      ? startChoices(
          model,
          prompts.map((p) => p.ids),
          request.options,
        )
      : []
    let scored: TokenLogprob[][] | undefined
    try {
      scored = await echoed(model, request, prompts)
    } catch (err) {
      for (const row of rows) row.cancel()
      throw err
    }
    const echoText = (choice: Choice) => (request.echo ? prompts[choice.prompt].text : '')

    if (!request.stream) {
      const { results, steps } = request.generates
        ? await runToEnd(rows, request.n, exchange.signal)
        : { results: undefined, steps: undefined }
      exchange.json(
        chunk(
          choices.map((choice) => {
            const result = results?.[choice.index]
            const tokens = (steps?.[choice.index] ?? []).map((step) => stepLogprob(model, step))
            return {
              index: choice.index,
              text: echoText(choice) + (result?.completion ?? ''),
              logprobs: logprobsOf(request, scored, prompts[choice.prompt], choice, tokens),
              finish_reason: result ? finishReason(result.stopReason) : 'length',
            }
          }),
          { usage: usage(promptTokens, completionTokens(results)) },
        ),
      )
      return
    }

    const events = exchange.events()
    const usageField = request.includeUsage ? { usage: null } : {}
    const send = (choice: Choice, text: string, logprobs: unknown, finish: string | null) =>
      events.send(chunk([{ index: choice.index, text, logprobs, finish_reason: finish }], usageField))
    // Where each choice's next token starts, in characters of prompt + completion.
    const offsets = choices.map((choice) => (request.echo ? 0 : characters(prompts[choice.prompt].text)))
    for (const choice of choices) {
      if (!request.echo) continue
      const logprobs = logprobsOf(request, scored, prompts[choice.prompt], choice, [])
      if (logprobs) offsets[choice.index] = logprobs.text_offset.length ? offsetAfter(logprobs) : 0
      await send(choice, echoText(choice), logprobs, null)
    }
    const results = request.generates
      ? await runChoices(
          rows,
          request.n,
          exchange.signal,
          async (choice, step) => {
            if (request.logprobs === undefined) {
              // A token whose text is held back (a partial character, a possible stop string) has nothing to send yet.
              if (step.text !== '') await send(choice, step.text, null, null)
              return
            }
            const logprobs = completionLogprobs([stepLogprob(model, step)], offsets[choice.index])
            offsets[choice.index] = offsetAfter(logprobs)
            await send(choice, step.text, logprobs, null)
          },
          true,
        )
      : undefined
    for (const choice of choices) {
      const result = results?.[choice.index]
      await send(choice, '', null, result ? finishReason(result.stopReason) : 'length')
    }
    if (request.includeUsage) await events.send(chunk([], { usage: usage(promptTokens, completionTokens(results)) }))
    events.end()
  }
}

function completionTokens(results: GenerateResult[] | undefined): number {
  return (results ?? []).reduce((sum, r) => sum + r.newIds.length, 0)
}

/** The offset just past the last token of `logprobs`. */
function offsetAfter(logprobs: { tokens: string[]; text_offset: number[] }): number {
  const last = logprobs.tokens.length - 1
  return logprobs.text_offset[last] + characters(logprobs.tokens[last])
}
