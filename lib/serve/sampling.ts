// The request fields that completions and chat completions share, as `generate` options. Each is
// converted, not decided again: values are checked by the library, and what a request leaves out
// takes the model's generation config, as everywhere else (vLLM's `--generation-config auto`).
import type { GenerateOptions } from '../generate-options'
import { badField } from './errors'
import { integer, number, object, string } from './fields'

export const SAMPLING_FIELDS = [
  'temperature',
  'top_p',
  'top_k',
  'min_p',
  'repetition_penalty',
  'presence_penalty',
  'frequency_penalty',
  'seed',
  'logit_bias',
  'stop',
  'n',
  'user',
] as const

function stop(value: unknown): string[] {
  const list = Array.isArray(value) ? value : [value]
  return list.map((s, i) => string(s, Array.isArray(value) ? `stop[${i}]` : 'stop'))
}

/** OpenAI's penalties on counts have no transformers processor here: only their neutral 0 is taken. */
function noPenalty(value: unknown, name: string) {
  if (number(value, name) !== 0)
    throw badField(name, 'is not supported (GPT-2 serving uses repetition_penalty); leave it out or 0')
}

/** The sampling fields present in `fields` as generate options. */
export function samplingOptions(fields: Record<string, unknown>): GenerateOptions {
  const options: GenerateOptions = {}
  const { temperature, top_p, top_k, min_p, repetition_penalty, seed, logit_bias, n } = fields
  if (temperature !== undefined) {
    // OpenAI's temperature 0 is greedy decoding; any other samples at that temperature.
    const t = number(temperature, 'temperature')
    Object.assign(options, t === 0 ? { doSample: false } : { doSample: true, temperature: t })
  }
  if (top_p !== undefined) options.topP = number(top_p, 'top_p')
  // vLLM's -1 (as 0) turns top-k off.
  if (top_k !== undefined) options.topK = top_k === -1 ? 0 : integer(top_k, 'top_k')
  if (min_p !== undefined) options.minP = number(min_p, 'min_p')
  if (repetition_penalty !== undefined) options.repetitionPenalty = number(repetition_penalty, 'repetition_penalty')
  if (fields.presence_penalty !== undefined) noPenalty(fields.presence_penalty, 'presence_penalty')
  if (fields.frequency_penalty !== undefined) noPenalty(fields.frequency_penalty, 'frequency_penalty')
  if (seed !== undefined) options.seed = integer(seed, 'seed')
  if (logit_bias !== undefined) {
    const biases = Object.entries(object(logit_bias, 'logit_bias'))
    options.logitBias = Object.fromEntries(biases.map(([id, bias]) => [id, number(bias, `logit_bias.${id}`)]))
  }
  if (fields.stop !== undefined) options.stop = stop(fields.stop)
  if (fields.user !== undefined) string(fields.user, 'user')
  if (n !== undefined && integer(n, 'n', 1) > 1) options.numReturnSequences = n as number
  return options
}
