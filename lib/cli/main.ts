// `nexttoken <command>`: argument parsing (node:util's parseArgs), help, and exit codes: 0 ok,
// 1 a coded library error (its code and message on stderr), 2 bad usage, 130 interrupted.
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { AbortError, NexttokenError } from '../errors'
import { type Io, UsageError, type Values } from './args'
import { cacheLs, download, generate, next } from './commands'
import { serve } from './serve'
import { textFor } from './format'
import { step } from './step'

type Options = NonNullable<ParseArgsConfig['options']>

const MODEL: Options = {
  model: { type: 'string', short: 'm', default: 'gpt2' },
  dtype: { type: 'string' },
  'packed-cache': { type: 'string' },
}
const JSON_OUT: Options = { json: { type: 'boolean' } }
/** Model text as it is, control characters included, on a terminal too. */
const RAW: Options = { raw: { type: 'boolean' } }

interface Command {
  usage: string
  about: string
  options: Options
  run: (values: Values, text: string[], io: Io) => Promise<void>
}

const COMMANDS: Record<string, Command> = {
  next: {
    usage: 'nexttoken next [--model gpt2] [--top 5] [--json] "text"',
    about: "the most likely next tokens after the text (the notebook's top-5 table), and the greedy one",
    options: { ...MODEL, ...JSON_OUT, top: { type: 'string', short: 'k', default: '5' } },
    run: next,
  },
  step: {
    usage: 'nexttoken step [--model gpt2] [--top 5] [--raw] "text"',
    about: 'append tokens one at a time: Enter takes the most likely, 1-9 that row of the table, q quits',
    options: { ...MODEL, ...RAW, top: { type: 'string', short: 'k', default: '5' } },
    run: step,
  },
  generate: {
    usage:
      'nexttoken generate [--model gpt2] [--max-length 100 | --max-new-tokens N] [--sample --temperature T --top-k K --top-p P --seed S] [--repetition-penalty R] [--json] [--raw] "text"',
    about: 'stream a completion of the text to stdout (greedy unless --sample)',
    options: {
      ...MODEL,
      ...JSON_OUT,
      ...RAW,
      'max-length': { type: 'string' },
      'max-new-tokens': { type: 'string' },
      sample: { type: 'boolean' },
      temperature: { type: 'string' },
      'top-k': { type: 'string' },
      'top-p': { type: 'string' },
      seed: { type: 'string' },
      'repetition-penalty': { type: 'string' },
    },
    run: generate,
  },
  serve: {
    usage:
      'nexttoken serve [--model gpt2] [--dtype ...] [--host 127.0.0.1] [--port 8000] [--max-batch-size N] [--max-queue-length N] [--api-key KEY] [--served-model-name NAME]',
    about: 'an OpenAI-compatible server (/v1/completions, /v1/chat/completions) until Ctrl-C',
    options: {
      ...MODEL,
      host: { type: 'string' },
      port: { type: 'string', short: 'p' },
      'max-batch-size': { type: 'string' },
      'max-queue-length': { type: 'string' },
      'api-key': { type: 'string' },
      'served-model-name': { type: 'string' },
    },
    run: serve,
  },
  download: {
    usage: 'nexttoken download <repo id> [--revision main]',
    about: 'fill the Hugging Face cache with a model, as Python would (a progress bar on a terminal)',
    options: { revision: { type: 'string' } },
    run: download,
  },
  cache: {
    usage: 'nexttoken cache ls [--json]',
    about: 'the GPT-2 models in the Hugging Face cache: id, revision, size, path',
    options: { ...JSON_OUT },
    run: cacheLs,
  },
}

function help(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(9)} ${c.about}`)
  return `nexttoken: GPT-2 from the command line, one token at a time.\n\nCommands:\n${lines.join('\n')}\n\nnexttoken <command> --help for its options. --model takes a Hub repo id (default gpt2, through the\nHugging Face cache) or a model directory; --dtype (fp32, bf16, fp16, q8, q4) what its weights are held in;\n--packed-cache DIR keeps the packed weights in DIR, so that later runs load in milliseconds. On a\nterminal, control characters in model text are shown escaped (\\x1b); --raw writes them as they are.\n`
}

/** Runs the command line `argv` (without node and the script); resolves with the exit code. */
export async function main(argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(help())
    return name === undefined ? 2 : 0
  }
  const command = COMMANDS[name]
  if (!command) {
    io.stderr.write(`nexttoken: unknown command '${name}'\n\n${help()}`)
    return 2
  }
  try {
    const { values, positionals } = parseArgs({
      args: rest,
      options: { ...command.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    })
    if (values.help) {
      io.stdout.write(`${command.usage}\n\n${command.about}\n`)
      return 0
    }
    await command.run(values as Values, positionals, io)
    return 0
  } catch (err) {
    if (err instanceof AbortError) {
      io.stderr.write('nexttoken: interrupted\n')
      return 130
    }
    if (err instanceof NexttokenError) {
      // A message may quote a model's files (a token, a name): no escape sequences on a terminal.
      io.stderr.write(`${err.code}: ${textFor(io.stderr, false)(err.message)}\n`)
      return 1
    }
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr.write(`nexttoken ${name}: ${(err as Error).message}\n\nusage: ${command.usage}\n`)
      return 2
    }
    throw err
  }
}
