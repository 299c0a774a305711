// The catalogue of model files written to take the process down (issue 33): a pytorch_model.bin
// whose pickle is a memory bomb or declares tensors no file could hold, or calls os.system, and
// a tokenizer.json whose pipeline brings a regex that makes Oniguruma panic. Each is loaded (and,
// if it loads, used) in a child process with a 3 GiB address-space limit, as the issue's reviewer
// ran them: before, each ended in an abort or SIGSEGV; now each is a coded error naming the file,
// and a failure here is the child dying, a wrong code or a wrong message.
import { spawn } from 'node:child_process'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import test from 'ava'

import { CHILDREN, type ChildExit } from '../helpers/children'
import { TINY_MODEL } from '../helpers/fixtures'
import { copyOfTinyModel } from '../helpers/model-dirs'
import { type PickledTensor, pytorchCheckpoint, pytorchFromSafetensors, stateDictPickle } from '../helpers/pytorch'

const CHILD = join(CHILDREN, 'load-untrusted.cjs')
const SENTENCE = 'The quick brown fox jumps over the lazy dog'
/** In KiB, as `ulimit -v` takes it: 3 GiB. */
const ADDRESS_SPACE_KIB = 3 * 1024 * 1024

/**
 * Runs the child on `dir`, on Linux under the address-space limit: the shell sets it and execs
 * node, so that the limit holds for node and every thread it starts, and the child's signal is
 * node's own.
 */
function runLimited(dir: string, kind: 'model' | 'tokenizer', prompt = SENTENCE): Promise<ChildExit> {
  const args = [CHILD, dir, kind, prompt]
  const [command, commandArgs] =
    process.platform === 'linux'
      ? ['/bin/sh', ['-c', `ulimit -v ${ADDRESS_SPACE_KIB} && exec "$0" "$@"`, process.execPath, ...args]]
      : [process.execPath, args]
  return new Promise((resolve, reject) => {
    const child = spawn(command, commandArgs, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, exitedAt: Date.now() })
    })
  })
}

interface Outcome {
  code?: string
  message?: string
  ids?: number[]
}

function outcome(t: import('ava').ExecutionContext, child: ChildExit): Outcome {
  t.is(child.signal, null, `the child was killed by ${child.signal}; stderr: ${child.stderr}`)
  t.is(child.code, 0, `exit code ${child.code}; stderr: ${child.stderr}`)
  const line = child.stdout.trim().split('\n').at(-1) ?? ''
  try {
    return JSON.parse(line) as Outcome
  } catch {
    t.fail(`no result from the child: stdout ${child.stdout}, stderr ${child.stderr}`)
    return {}
  }
}

/** A copy of the fixture with pytorch_model.bin in place of model.safetensors. */
function withPytorch(bin: Buffer): string {
  const dir = copyOfTinyModel(['model.safetensors'])
  writeFileSync(join(dir, 'pytorch_model.bin'), bin)
  return dir
}

/** The memory bomb: a list, then 24 times a pair of what the memo holds, put back in its place. */
const BOMB = Buffer.concat([
  Buffer.from('\x80\x02]q\x00', 'latin1'),
  Buffer.from('h\x00h\x00\x86q\x00'.repeat(24), 'latin1'),
])

/** One tensor of the fixture's state dict with a lying shape (and storage size). */
function lyingTensor(shape: bigint[], count = 96n): Buffer {
  const tensor: PickledTensor = {
    name: 'transformer.h.0.attn.c_attn.bias',
    storage: 'HalfStorage',
    key: '0',
    count,
    shape,
  }
  return pytorchCheckpoint(stateDictPickle([tensor]), [['0', Buffer.alloc(192)]])
}

const SIDE = 2n ** 31n - 1n
const latin1 = (text: string) => Buffer.from(text, 'latin1')

const PYTORCH: [name: string, bin: () => Buffer, message: RegExp][] = [
  [
    'the memo bomb (616 bytes that doubled 24 times)',
    () => pytorchCheckpoint(Buffer.concat([BOMB, latin1('.')])),
    /pytorch_model\.bin: .*holds no state dict/,
  ],
  [
    'the memo bomb as a tensor',
    () =>
      pytorchCheckpoint(
        Buffer.concat([latin1('\x80\x02}(X\x0a\x00\x00\x00wte.weight'), BOMB.subarray(2), latin1('u.')]),
      ),
    /pytorch_model\.bin: .*tensor 'wte\.weight': not a tensor/,
  ],
  [
    'the memo bomb nested 30 times more',
    () => pytorchCheckpoint(Buffer.concat([BOMB, latin1('h\x00h\x00\x86q\x00'.repeat(30)), latin1('.')])),
    /pytorch_model\.bin: .*nested more than 32 deep/,
  ],
  [
    'a shape of [2^20, 2^20] over 96 values',
    () => lyingTensor([2n ** 20n, 2n ** 20n]),
    /pytorch_model\.bin: .*shape \[1048576, 1048576\] from offset 0 needs more values than its storage/,
  ],
  [
    'a shape of [2^20, 2^20] over a storage that claims 2^40 values',
    () => lyingTensor([2n ** 20n, 2n ** 20n], 2n ** 40n),
    /pytorch_model\.bin: .*declares 1099511627776 values of 2 bytes but holds 192 bytes/,
  ],
  [
    'a shape of [2^31-1, 2^31-1]',
    () => lyingTensor([SIDE, SIDE]),
    /pytorch_model\.bin: .*shape \[2147483647, 2147483647\] .*needs more values/,
  ],
  [
    'a shape of [2^31-1, 2^31-1] over a storage that claims as many',
    () => lyingTensor([SIDE, SIDE], SIDE * SIDE),
    /pytorch_model\.bin: .*declares 4611686014132420609 values of 2 bytes but holds 192 bytes/,
  ],
  [
    'a call of os.system',
    () => pytorchCheckpoint(latin1('\x80\x02}(X\x01\x00\x00\x00acos\nsystem\nX\x02\x00\x00\x00ls\x85Ru.')),
    /pytorch_model\.bin: .*tensor 'a': a call of os\.system, not a tensor/,
  ],
  [
    'a file that is not a zip (the format before PyTorch 1.6)',
    () => latin1('\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02M\xe9\x03.'),
    /pytorch_model\.bin: .*older formats are not read/,
  ],
]

for (const [name, bin, message] of PYTORCH) {
  test(`pytorch_model.bin: ${name} is ERR_MODEL_INVALID, the process alive`, async (t) => {
    const dir = withPytorch(bin())
    try {
      const result = outcome(t, await runLimited(dir, 'model'))
      t.is(result.code, 'ERR_MODEL_INVALID', result.message)
      t.regex(result.message ?? '', message)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
}

test('pytorch_model.bin: the fixture written as torch.save writes it loads and generates under the limit', async (t) => {
  const dir = withPytorch(pytorchFromSafetensors(join(TINY_MODEL, 'model.safetensors')))
  try {
    const result = outcome(t, await runLimited(dir, 'model'))
    t.is(result.code, undefined, result.message)
    t.is(result.ids?.length, 2)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

const TOKENIZER = JSON.parse(readFileSync(join(TINY_MODEL, 'tokenizer.json'), 'utf8'))
const SPLIT = { type: 'Split', pattern: { Regex: '(\\w+\\s?)+\\W\\z' }, behavior: 'Isolated', invert: false }
const REPLACE = { type: 'Replace', pattern: { Regex: '(a+)+$' }, content: '' }

const TOKENIZERS: [name: string, edit: Record<string, unknown>, message: RegExp][] = [
  // Oniguruma reaches its retry limit on the sentence and the onig crate panics: this aborted
  // Node ("failed to initiate panic") on generate('The quick brown fox jumps over the lazy dog').
  [
    'a Split pre-tokenizer with a regex that panics',
    { pre_tokenizer: SPLIT },
    /tokenizer\.json: its pre_tokenizer is 'Split'; nexttoken reads only GPT-2's byte-level BPE pipeline/,
  ],
  ['a Replace normalizer', { normalizer: REPLACE }, /tokenizer\.json: its normalizer is 'Replace'/],
  ['a Replace decoder', { decoder: REPLACE }, /tokenizer\.json: its decoder is 'Replace'/],
]

for (const [name, edit, message] of TOKENIZERS) {
  for (const kind of ['model', 'tokenizer'] as const) {
    test(`tokenizer.json: ${name} is ERR_MODEL_INVALID (${kind}), the process alive`, async (t) => {
      const dir = copyOfTinyModel()
      writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({ ...TOKENIZER, ...edit }))
      try {
        const result = outcome(t, await runLimited(dir, kind))
        t.is(result.code, 'ERR_MODEL_INVALID', result.message)
        t.regex(result.message ?? '', message)
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    })
  }
}

test('the fixture itself generates from the sentence under the limit', async (t) => {
  const result = outcome(t, await runLimited(TINY_MODEL, 'model'))
  t.is(result.code, undefined, result.message)
  t.is(result.ids?.length, 2)
})
