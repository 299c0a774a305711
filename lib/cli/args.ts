// What the CLI's commands share with its entry point: the process's streams, parsed option
// values, and the checks that turn bad arguments into a usage error (exit code 2).

export class UsageError extends Error {}

export interface Io {
  stdin: NodeJS.ReadStream
  stdout: NodeJS.WriteStream
  stderr: NodeJS.WriteStream
  env: NodeJS.ProcessEnv
  /** Aborted on Ctrl-C: downloads stop, generations end. */
  signal: AbortSignal
}

export type Values = Record<string, string | boolean | undefined>

/** A numeric option, or undefined when absent; anything else is a usage error. */
export function numberOption(values: Values, name: string): number | undefined {
  const value = values[name]
  if (value === undefined) return undefined
  const parsed = Number(value)
  if (typeof value !== 'string' || value.trim() === '' || !Number.isFinite(parsed)) {
    throw new UsageError(`--${name} takes a number; got '${String(value)}'`)
  }
  return parsed
}

/** The text argument: exactly one. */
export function oneText(text: string[], what = 'text'): string {
  if (text.length !== 1) throw new UsageError(`expected one ${what} argument (quote it); got ${text.length}`)
  return text[0]
}
