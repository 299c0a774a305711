// How the command shows things: tokens with their whitespace visible, aligned tables, byte
// counts, and a progress bar that degrades to plain lines where a bar cannot be drawn.
import { type DownloadProgress, isTrue } from '../hub/settings'

/** DEL and the C1 controls (U+0080-U+009F): JSON.stringify leaves them as they are. */
const DEL_AND_C1 = /[\x7f-\x9f]/g

/** Control characters a terminal acts on, but newline and tab: C0, DEL and C1. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is its job
const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g

const unicodeEscape = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`

/**
 * JSON whose strings escape every control character (JSON.stringify escapes C0 but not DEL or
 * C1, and U+009B is a terminal's CSI): the same value, safe to show on a terminal.
 */
export function safeJson(value: unknown): string {
  return JSON.stringify(value).replace(DEL_AND_C1, unicodeEscape)
}

/** A token as a JSON string: quotes show leading spaces, escapes show newlines, tabs and controls. */
export function visible(token: string): string {
  return safeJson(token)
}

/**
 * `text` with its control characters (but newline and tab) written as escapes (`\x1b`): text
 * from a model or a tokenizer cannot move the cursor, clear the screen, retitle the window or set
 * the clipboard when shown.
 */
export function escapeControls(text: string): string {
  return text.replace(CONTROLS, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
}

/**
 * How model text is written to `stream`: escaped on a terminal (`escapeControls`), as it is with
 * `raw` or anywhere else (a pipe, a file), where a program reads the exact text.
 */
export function textFor(stream: NodeJS.WriteStream, raw: boolean): (text: string) => string {
  return raw || stream.isTTY !== true ? (text) => text : escapeControls
}

/** Rows of cells, each column padded to its widest cell (numbers right-aligned). */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((row) => row.map(String))]
  const widths = header.map((_, col) => Math.max(...cells.map((row) => row[col].length)))
  const numeric = header.map((_, col) => rows.every((row) => typeof row[col] === 'number'))
  const line = (row: string[]) =>
    row
      .map((cell, col) => (numeric[col] ? cell.padStart(widths[col]) : cell.padEnd(widths[col])))
      .join('  ')
      .trimEnd()
  return cells.map(line).join('\n')
}

export function bytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB']
  let value = n
  let unit = 0
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000
    unit++
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?'
  const s = Math.round(seconds)
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
}

/** Whether a bar may be drawn on `stream`: a terminal, and nobody asked for plain output. */
export function canDrawBar(stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv = process.env): boolean {
  const off = (value: string | undefined) => value !== undefined && value !== '' && value !== '0'
  if (off(env.CI) || env.NO_COLOR !== undefined || env.TERM === 'dumb') return false
  if (isTrue(env.HF_HUB_DISABLE_PROGRESS_BARS)) return false
  return stream.isTTY === true
}

/**
 * Reports download progress on `stream`: one redrawn line with a bar, bytes, rate and ETA over
 * all files when `bar`, else a plain line as each file completes.
 */
export class ProgressReporter {
  private started = Date.now()
  private drawn = false
  private lastFile = ''

  constructor(
    private readonly stream: NodeJS.WritableStream,
    private readonly bar: boolean,
  ) {}

  readonly report = (progress: DownloadProgress): void => {
    const { overall } = progress
    if (!this.bar) {
      if (progress.loaded === progress.total && progress.file !== this.lastFile) {
        this.lastFile = progress.file
        this.stream.write(`downloaded ${progress.file} (${bytes(progress.total)})\n`)
      }
      return
    }
    const elapsed = (Date.now() - this.started) / 1000
    const rate = overall.loaded / Math.max(elapsed, 1e-3)
    const fraction = overall.total > 0 ? overall.loaded / overall.total : 1
    const width = 24
    const filled = Math.round(fraction * width)
    const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`
    const eta = rate > 0 ? (overall.total - overall.loaded) / rate : Number.POSITIVE_INFINITY
    const text = `${progress.file.slice(0, 28).padEnd(28)} ${bar} ${String(Math.floor(fraction * 100)).padStart(3)}%  ${bytes(overall.loaded)} / ${bytes(overall.total)}  ${bytes(rate)}/s  ETA ${duration(eta)}`
    this.stream.write(`\r\x1b[2K${text}`)
    this.drawn = true
  }

  /** Ends the bar's line, if one was drawn. */
  done(): void {
    if (this.drawn) this.stream.write('\n')
    this.drawn = false
  }
}
