// `nexttoken step`: the notebook's step-3 cell run again and again. The text and its table of
// likely next tokens; Enter appends the most likely, a digit 1-9 that row's token, q (or Ctrl-C)
// quits. On a terminal keys act at once; otherwise (a pipe, a file) commands come one per line:
// an empty line, a digit, or q.
import { createInterface } from 'node:readline'
import { type Candidates, loadModel, topOption } from './commands'
import { table, textFor, visible } from './format'
import { type Io, oneText, type Values } from './args'

type Command = 'enter' | 'quit' | number

export async function step(values: Values, text: string[], io: Io): Promise<void> {
  const top = topOption(values)
  await using model = await loadModel(values, io)
  const ids = [...model.tokenizer.encode(oneText(text))]
  const keys = io.stdin.isTTY === true
  // Redraw in place on a real terminal; print one screen after another anywhere else.
  const redraw = keys && io.stdout.isTTY === true && io.env.TERM !== 'dumb'
  const shown = textFor(io.stdout, values.raw === true)
  const show = async (): Promise<Candidates> => {
    const candidates = await model.topK(ids, top)
    const rows = candidates.map((c, i) => [i + 1, c.id, visible(c.token), c.p.toFixed(4)])
    const rowKeys = candidates.length > 1 ? `, 1-${Math.min(9, candidates.length)}: that row` : ''
    io.stdout.write(
      `${redraw ? '\x1b[2J\x1b[H' : '\n'}${shown(model.tokenizer.decode(ids))}\n\n${table(['#', 'id', 'token', 'p'], rows)}\n\n` +
        `Enter: append the most likely token${rowKeys}, q: quit\n`,
    )
    return candidates
  }
  let candidates = await show()
  for await (const command of keys ? keypresses(io.stdin) : lines(io.stdin)) {
    if (command === 'quit') break
    const row = command === 'enter' ? 0 : command - 1
    if (row >= candidates.length) continue
    ids.push(candidates[row].id)
    candidates = await show()
  }
}

function parse(input: string): Command | undefined {
  if (input === '' || input === '\r' || input === '\n') return 'enter'
  if (/^[1-9]$/.test(input)) return Number(input)
  if (input === 'q' || input === '\x03' || input === '\x04') return 'quit' // q, Ctrl-C, Ctrl-D
  return undefined
}

/** Keys of a terminal in raw mode, as they are pressed. */
async function* keypresses(stdin: NodeJS.ReadStream): AsyncGenerator<Command> {
  stdin.setRawMode(true)
  try {
    for await (const chunk of stdin) {
      for (const key of String(chunk).split('')) {
        const command = parse(key)
        if (command !== undefined) yield command
        if (command === 'quit') return
      }
    }
  } finally {
    stdin.setRawMode(false)
    stdin.pause()
  }
}

/** Commands one per line from a pipe or a file; the end of input quits. */
async function* lines(stdin: NodeJS.ReadStream): AsyncGenerator<Command> {
  for await (const line of createInterface({ input: stdin })) {
    const command = parse(line.trim())
    if (command !== undefined) yield command
    if (command === 'quit') return
  }
}
