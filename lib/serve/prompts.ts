// OpenAI's `prompt`: a string, a list of strings, a list of token ids, or a list of such lists,
// each as token ids (tokenized by the model, which refuses what its context cannot hold).
import type { Gpt2 } from '../gpt2'
import { badField } from './errors'

export interface Prompt {
  ids: Uint32Array
  /** What `echo` gives back: the text as sent, or the ids decoded. */
  text: string
}

const isId = (value: unknown) => typeof value === 'number'
const isIds = (value: unknown) => Array.isArray(value) && value.length > 0 && value.every(isId)

function prompts(value: unknown): (string | number[])[] {
  if (typeof value === 'string') return [value]
  if (isIds(value)) return [value as number[]]
  if (Array.isArray(value) && value.length > 0 && value.every((p) => typeof p === 'string' || isIds(p)))
    return value as (string | number[])[]
  throw badField(
    'prompt',
    'must be a string, a list of strings, a list of token ids or a list of such lists (none empty)',
  )
}

/** The request's prompts as token ids. */
export async function readPrompts(model: Gpt2, value: unknown): Promise<Prompt[]> {
  const read = async (prompt: string | number[]): Promise<Prompt> => {
    const ids = await model.toIds(prompt)
    return { ids, text: typeof prompt === 'string' ? prompt : model.tokenizer.decode(ids) }
  }
  return Promise.all(prompts(value).map(read))
}
