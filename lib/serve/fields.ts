// Checks of a request body's fields, each failure naming its field (OpenAI's `param`). They check
// JSON types only: values (ranges, lengths, token ids) are the library's to check.
import { badField, HttpError } from './errors'

/**
 * The body's fields, every one of them in `known` (the unknown ones listed in one 400, so a
 * misspelt option fails rather than doing nothing). `null` counts as left out, as OpenAI reads it.
 */
export function fieldsOf(body: unknown, known: readonly string[]): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new HttpError(400, 'invalid_request', 'the request body must be a JSON object')
  const unknown = Object.keys(body).filter((name) => !known.includes(name))
  if (unknown.length > 0)
    throw new HttpError(
      400,
      'invalid_request',
      `unknown field${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`,
      unknown[0],
    )
  return Object.fromEntries(Object.entries(body).filter(([, value]) => value !== null))
}

export function integer(value: unknown, name: string, min = 0): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min)
    throw badField(name, `must be an integer of at least ${min}; got ${JSON.stringify(value)}`)
  return value
}

export function number(value: unknown, name: string): number {
  if (typeof value !== 'number') throw badField(name, `must be a number; got ${JSON.stringify(value)}`)
  return value
}

export function boolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw badField(name, `must be a boolean; got ${JSON.stringify(value)}`)
  return value
}

export function string(value: unknown, name: string): string {
  if (typeof value !== 'string') throw badField(name, `must be a string; got ${JSON.stringify(value)}`)
  return value
}

export function object(value: unknown, name: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badField(name, 'must be an object')
  return value as Record<string, unknown>
}

/** A list of token ids (integers; the tokenizer checks their range). */
export function tokenIds(value: unknown, name: string): number[] {
  if (!Array.isArray(value) || !value.every((id) => typeof id === 'number' && Number.isSafeInteger(id)))
    throw badField(name, 'must be a list of token ids (integers)')
  return value
}
