// What crosses Redis is JSON, and JSON has no Infinity: `logitBias: { 50256: -Infinity }` (a
// banned token) would arrive as `null`. Non-finite numbers travel as `{ $number: '-Infinity' }`
// and are restored on the other side; every other value is left as it is.

/** A value as it is stored in a job: plain JSON. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json }

const TAG = '$number'

/** `value` with its non-finite numbers tagged; functions and undefined fields dropped, as JSON does. */
export function toJson(value: unknown): Json {
  if (typeof value === 'number') return Number.isFinite(value) ? value : { [TAG]: String(value) }
  if (Array.isArray(value)) return value.map(toJson)
  if (value !== null && typeof value === 'object') {
    const out: { [key: string]: Json } = {}
    for (const [key, field] of Object.entries(value)) {
      if (field !== undefined && typeof field !== 'function') out[key] = toJson(field)
    }
    return out
  }
  return value as Json
}

/** The inverse of `toJson`. */
export function fromJson<T>(value: Json): T {
  return restore(value) as T
}

function restore(value: Json): unknown {
  if (Array.isArray(value)) return value.map(restore)
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value)
    if (keys.length === 1 && keys[0] === TAG && typeof value[TAG] === 'string') return Number(value[TAG])
    return Object.fromEntries(keys.map((key) => [key, restore(value[key])]))
  }
  return value
}

/** JSON with the keys of every object sorted: the same options give the same text in any key order. */
export function canonical(value: Json): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort()
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonical(value[key])}`).join(',')}}`
  }
  return JSON.stringify(value)
}
