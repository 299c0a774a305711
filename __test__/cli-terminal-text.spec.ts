// Model text on a terminal (issue 33, item 6): a model whose generation_config.json makes it
// write an escape sequence (OSC 0, which retitles the window and hides the text in it) has the
// sequence shown escaped in a real terminal (tmux), written as it is with --raw, and as it is
// into a pipe, where a program reads the exact text.
import { execFile } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import test from 'ava'

import { Gpt2 } from '../index'
import { TINY_MODEL } from './helpers/fixtures'
import { copyOfTinyModel } from './helpers/model-dirs'
import { Terminal } from './helpers/terminal'

const CLI = join(__dirname, '..', 'cli.js')
/** Set the window title to "pwned", then ring the bell: the terminal shows none of it. */
const SEQUENCE = '\x1b]0;pwned\x07'

/**
 * A copy of the tiny model that generates `SEQUENCE` after any prompt: a sequence bias on its
 * first token, and on each next token after the one before (the tokens are all different).
 */
const model = (async () => {
  const { tokenizer } = await Gpt2.fromPretrained(TINY_MODEL)
  const ids = [...tokenizer.encode(SEQUENCE)]
  if (new Set(ids).size !== ids.length) throw new Error(`tokens repeat: ${ids}`)
  const bias = [[[ids[0]], 50], ...ids.slice(1).map((id, i) => [[ids[i], id], 100])]
  const dir = copyOfTinyModel()
  const config = JSON.parse(readFileSync(join(TINY_MODEL, 'generation_config.json'), 'utf8'))
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ ...config, sequence_bias: bias }))
  return { dir, tokens: ids.length }
})()

test('the model generates the escape sequence (the test’s premise)', async (t) => {
  const { dir, tokens } = await model
  const m = await Gpt2.fromPretrained(dir)
  t.is((await m.generate('Hello', { maxNewTokens: tokens })).completion, SEQUENCE)
  await m.dispose()
})

/** The screen of `generate` run in a terminal with `flags`, once it has exited. */
async function screenOf(flags: string[]): Promise<string> {
  const { dir, tokens } = await model
  const args = ['generate', '--model', dir, '--max-new-tokens', String(tokens), ...flags, 'Hello']
  const terminal = await Terminal.start([process.execPath, CLI, ...args])
  try {
    return await terminal.waitFor(/\[exit \d+\]/)
  } finally {
    await terminal.close()
  }
}

test('generate on a terminal shows control characters escaped', async (t) => {
  const screen = await screenOf([])
  t.regex(screen, /\[exit 0\]/)
  t.true(screen.includes(String.raw`\x1b]0;pwned\x07`), screen)
})

test('generate --raw writes them as they are: the terminal acts on them', async (t) => {
  const screen = await screenOf(['--raw'])
  t.regex(screen, /\[exit 0\]/)
  // The title sequence was consumed by the terminal: none of its text is on the screen.
  t.false(screen.includes('pwned'), screen)
})

test('generate into a pipe writes the exact text', async (t) => {
  const { dir, tokens } = await model
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile(
      process.execPath,
      [CLI, 'generate', '--model', dir, '--max-new-tokens', String(tokens), 'Hello'],
      (error, out) => (error ? reject(error) : resolve(out)),
    ),
  )
  t.is(stdout, `${SEQUENCE}\n`)
})

test('step on a terminal shows the text escaped, its table as JSON strings', async (t) => {
  const { dir } = await model
  const terminal = await Terminal.start([process.execPath, CLI, 'step', '--model', dir, `Hello${SEQUENCE}`])
  try {
    const screen = await terminal.waitFor(/q: quit/)
    t.true(screen.includes(String.raw`Hello\x1b]0;pwned\x07`), screen)
    await terminal.keys('q')
    await terminal.waitFor(/\[exit 0\]/)
  } finally {
    await terminal.close()
  }
})
