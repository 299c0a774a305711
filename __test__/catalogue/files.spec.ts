// The catalogue of damaged model directories: each a copy of the tiny fixture with one thing
// broken (truncated or lying safetensors, bad tensors, bad config.json fields, broken tokenizer
// files, directories, symlink loops or empty files where files should be, weights that are not
// finite). Every one is a coded NexttokenError from fromPretrained whose message names the
// problem; what the loader accepts on purpose (tensors it does not use, a padded vocabulary) is
// listed at the end, so that the decision is a test too.
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import test from 'ava'

import { type ErrorCode, Gpt2, NexttokenError } from '../../index'
import { TINY_MODEL } from '../helpers/fixtures'
import { copyOfTinyModel, tinyModelWithFile, tinyModelWithWeights } from '../helpers/model-dirs'
import { type StoredTensor, widenToF32 } from '../helpers/safetensors'

const WEIGHTS = readFileSync(join(TINY_MODEL, 'model.safetensors'))
const HEADER_LENGTH = Number(WEIGHTS.readBigUInt64LE(0))
const HEADER: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> = JSON.parse(
  WEIGHTS.subarray(8, 8 + HEADER_LENGTH).toString('utf8'),
)
const DATA = WEIGHTS.subarray(8 + HEADER_LENGTH)
const CONFIG = JSON.parse(readFileSync(join(TINY_MODEL, 'config.json'), 'utf8'))

/** A copy of the fixture whose model.safetensors is `bytes`. */
const withWeightBytes = (bytes: Buffer) => () => tinyModelWithFile('model.safetensors', bytes)

/** A safetensors file with this header (and, unless given, its true length) over the fixture's data. */
function rawSafetensors(header: object, data: Buffer = DATA, length?: bigint): Buffer {
  const json = Buffer.from(JSON.stringify(header))
  const prefix = Buffer.alloc(8)
  prefix.writeBigUInt64LE(length ?? BigInt(json.length))
  return Buffer.concat([prefix, json, data])
}

/** The fixture's header with `edit` applied to a deep copy of it. */
function editedHeader(edit: (header: typeof HEADER) => void): Buffer {
  const header = structuredClone(HEADER)
  edit(header)
  return rawSafetensors(header)
}

/** The fixture's file with its 8-byte header length replaced. */
function withHeaderLength(length: bigint): Buffer {
  const bytes = Buffer.from(WEIGHTS)
  bytes.writeBigUInt64LE(length, 0)
  return bytes
}

const withConfig = (edit: Record<string, unknown>) => () =>
  tinyModelWithFile('config.json', JSON.stringify({ ...CONFIG, ...edit }))

/** The fixture with one tensor's values replaced (`widen`: stored as F32 first). */
function withValue(name: string, index: number, value: number, widen = false) {
  return () =>
    tinyModelWithWeights((tensors) => {
      const stored = widen ? widenToF32(tensors.get(name)!) : tensors.get(name)!
      const data = Buffer.from(stored.data)
      if (stored.dtype === 'F32') data.writeFloatLE(value, 4 * index)
      else data.writeUInt16LE(Number.isNaN(value) ? 0x7e00 : value > 0 ? 0x7c00 : 0xfc00, 2 * index) // f16 NaN / ±Inf
      return new Map([...tensors, [name, { ...stored, data }]])
    })
}

/** The fixture's tensors with `name` changed by `edit` (or removed when it returns undefined). */
function withTensor(name: string, edit: (t: StoredTensor) => StoredTensor | undefined) {
  return () =>
    tinyModelWithWeights((tensors) => {
      const edited = edit(tensors.get(name)!)
      const out = new Map(tensors)
      if (edited) out.set(name, edited)
      else out.delete(name)
      return out
    })
}

/** A copy of the fixture in which `file` is a directory. */
const directoryAt = (file: string) => () => {
  const dir = copyOfTinyModel([file])
  mkdirSync(join(dir, file))
  return dir
}

/** A copy of the fixture in which `file` is a symlink to itself (ELOOP when opened). */
const symlinkLoopAt = (file: string) => () => {
  const dir = copyOfTinyModel([file])
  symlinkSync(file, join(dir, file))
  return dir
}

/** A copy of the fixture without `tokenizer.json`, with `vocab.json` / `merges.txt` as given. */
const vocabAndMerges = (vocab: string, merges: string) => () => {
  const dir = copyOfTinyModel(['tokenizer.json'])
  writeFileSync(join(dir, 'vocab.json'), vocab)
  writeFileSync(join(dir, 'merges.txt'), merges)
  return dir
}

/** The fixture with a vocabulary of `rows` rows (wte cut or padded with zeros) and config to match. */
function withModelVocab(rows: number) {
  return () => {
    const dir = tinyModelWithWeights((tensors) => {
      const wte = tensors.get('transformer.wte.weight')!
      const rowBytes = 2 * wte.shape[1]
      const data = Buffer.alloc(rows * rowBytes)
      wte.data.copy(data, 0, 0, Math.min(wte.data.length, data.length))
      return new Map([...tensors, ['transformer.wte.weight', { ...wte, shape: [rows, wte.shape[1]], data }]])
    })
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...CONFIG, vocab_size: rows }))
    return dir
  }
}

const TOKENIZER = readFileSync(join(TINY_MODEL, 'tokenizer.json'))
const LAST = Object.keys(HEADER)
  .filter((k) => k !== '__metadata__')
  .sort((a, b) => HEADER[a].data_offsets[0] - HEADER[b].data_offsets[0])
  .at(-1)!

type Case = [name: string, dir: () => string, code: ErrorCode, message: RegExp]

const CASES: Case[] = [
  // model.safetensors cut short: the 8-byte length, the JSON header, the tensor data.
  ['model.safetensors empty', withWeightBytes(Buffer.alloc(0)), 'ERR_MODEL_INVALID', /model\.safetensors.*safetensors/],
  [
    'model.safetensors cut inside the length',
    withWeightBytes(WEIGHTS.subarray(0, 5)),
    'ERR_MODEL_INVALID',
    /safetensors/,
  ],
  [
    'model.safetensors cut inside the header',
    withWeightBytes(WEIGHTS.subarray(0, 100)),
    'ERR_MODEL_INVALID',
    /safetensors/,
  ],
  [
    'model.safetensors cut after the header',
    withWeightBytes(WEIGHTS.subarray(0, 8 + HEADER_LENGTH)),
    'ERR_MODEL_INVALID',
    /safetensors/,
  ],
  [
    'model.safetensors cut inside the data',
    withWeightBytes(WEIGHTS.subarray(0, 8 + HEADER_LENGTH + 1000)),
    'ERR_MODEL_INVALID',
    /safetensors/,
  ],
  [
    'model.safetensors missing its last byte',
    withWeightBytes(WEIGHTS.subarray(0, WEIGHTS.length - 1)),
    'ERR_MODEL_INVALID',
    /safetensors/,
  ],
  // The header's length lies.
  [
    'a header length 8 too big',
    withWeightBytes(withHeaderLength(BigInt(HEADER_LENGTH + 8))),
    'ERR_MODEL_INVALID',
    /safetensors/,
  ],
  [
    'a header length 8 too small',
    withWeightBytes(withHeaderLength(BigInt(HEADER_LENGTH - 8))),
    'ERR_MODEL_INVALID',
    /safetensors/,
  ],
  ['a header length of 2^40', withWeightBytes(withHeaderLength(2n ** 40n)), 'ERR_MODEL_INVALID', /safetensors/],
  [
    'a header length of 2^64 - 1',
    withWeightBytes(withHeaderLength(2n ** 64n - 1n)),
    'ERR_MODEL_INVALID',
    /safetensors/,
  ],
  ['a header length of 0', withWeightBytes(withHeaderLength(0n)), 'ERR_MODEL_INVALID', /safetensors/],
  ['a header that is not JSON', withWeightBytes(rawSafetensors({}).fill(0x7b, 8)), 'ERR_MODEL_INVALID', /safetensors/],
  // Tensor offsets.
  [
    'the last tensor ending past the file',
    withWeightBytes(editedHeader((h) => (h[LAST].data_offsets[1] += 64))),
    'ERR_MODEL_INVALID',
    /safetensors/,
  ],
  [
    'two tensors at the same offsets',
    withWeightBytes(
      editedHeader(
        (h) => (h['transformer.h.0.ln_1.bias'].data_offsets = [...h['transformer.h.0.ln_1.weight'].data_offsets]),
      ),
    ),
    'ERR_MODEL_INVALID',
    /safetensors/,
  ],
  [
    'a gap between two tensors',
    withWeightBytes(editedHeader((h) => (h['transformer.h.0.attn.c_attn.bias'].data_offsets = [2, 192]))),
    'ERR_MODEL_INVALID',
    /safetensors/,
  ],
  [
    'offsets that run backwards',
    withWeightBytes(editedHeader((h) => (h['transformer.h.0.attn.c_attn.bias'].data_offsets = [192, 0]))),
    'ERR_MODEL_INVALID',
    /safetensors/,
  ],
  [
    'offsets past 2^53',
    withWeightBytes(editedHeader((h) => (h[LAST].data_offsets[1] = 2 ** 60))),
    'ERR_MODEL_INVALID',
    /safetensors/,
  ],
  // Tensors: dtypes, shapes, names.
  [
    'an unknown dtype string',
    withWeightBytes(editedHeader((h) => (h['transformer.ln_f.bias'].dtype = 'F99'))),
    'ERR_MODEL_INVALID',
    /safetensors/,
  ],
  [
    'a weight stored as integers',
    withTensor('transformer.ln_f.bias', (t) => ({ ...t, dtype: 'I16' })),
    'ERR_MODEL_INVALID',
    /'transformer\.ln_f\.bias' is stored as I16; expected F32, F16 or BF16/,
  ],
  [
    'a shape that does not match its bytes',
    withWeightBytes(editedHeader((h) => (h['transformer.ln_f.bias'].shape = [33]))),
    'ERR_MODEL_INVALID',
    /safetensors/,
  ],
  [
    'a transposed weight',
    withTensor('transformer.h.1.attn.c_attn.weight', (t) => ({ ...t, shape: [96, 32] })),
    'ERR_MODEL_INVALID',
    /'h\.1\.attn\.c_attn\.weight' has shape \[96, 32\]; the config implies \[32, 96\]/,
  ],
  [
    'a missing tensor',
    withTensor('transformer.h.1.mlp.c_fc.weight', () => undefined),
    'ERR_MODEL_INVALID',
    /tensor 'h\.1\.mlp\.c_fc\.weight' is missing/,
  ],
  [
    'the same tensor with and without the transformer. prefix',
    () => tinyModelWithWeights((t) => new Map([...t, ['ln_f.bias', t.get('transformer.ln_f.bias')!]])),
    'ERR_MODEL_INVALID',
    /'ln_f\.bias' appears twice/,
  ],
  // Weights that are not finite: refused at load, naming the tensor (f16 stored and widened; f32
  // read in place; a packed weight and a plain one).
  [
    'a NaN in an f16 bias',
    withValue('transformer.ln_f.bias', 3, Number.NaN),
    'ERR_MODEL_INVALID',
    /'ln_f\.bias' holds NaN at index 3/,
  ],
  [
    'an Inf in the f16 embeddings',
    withValue('transformer.wte.weight', 1000, Number.POSITIVE_INFINITY),
    'ERR_MODEL_INVALID',
    /'wte\.weight' holds inf at index 1000/,
  ],
  [
    'a -Inf in an f32 packed weight',
    withValue('transformer.h.0.mlp.c_fc.weight', 7, Number.NEGATIVE_INFINITY, true),
    'ERR_MODEL_INVALID',
    /'h\.0\.mlp\.c_fc\.weight' holds -inf at index 7/,
  ],
  [
    'a NaN in f32 position embeddings',
    withValue('transformer.wpe.weight', 31, Number.NaN, true),
    'ERR_MODEL_INVALID',
    /'wpe\.weight' holds NaN at index 31/,
  ],
  // config.json: every size field with a wrong type or value.
  ['n_embd as a string', withConfig({ n_embd: '32' }), 'ERR_MODEL_INVALID', /config\.json.*n_embd/],
  ['n_layer as a float', withConfig({ n_layer: 2.5 }), 'ERR_MODEL_INVALID', /config\.json.*n_layer/],
  ['n_layer as a whole float', withConfig({ n_layer: 2.0000001 }), 'ERR_MODEL_INVALID', /config\.json.*n_layer/],
  ['n_head negative', withConfig({ n_head: -4 }), 'ERR_MODEL_INVALID', /config\.json.*n_head/],
  ['n_layer zero', withConfig({ n_layer: 0 }), 'ERR_MODEL_INVALID', /config\.json.*n_layer must be positive/],
  ['n_positions null', withConfig({ n_positions: null }), 'ERR_MODEL_INVALID', /config\.json.*n_positions/],
  ['vocab_size missing', withConfig({ vocab_size: undefined }), 'ERR_MODEL_INVALID', /config\.json.*vocab_size/],
  ['vocab_size past 2^32', withConfig({ vocab_size: 2 ** 33 }), 'ERR_MODEL_INVALID', /vocab_size does not fit/],
  [
    'n_embd huge',
    withConfig({ n_embd: 2 ** 62, n_head: 1 }),
    'ERR_MODEL_INVALID',
    /n_embd \(4611686018427388000\) is larger/,
  ],
  ['n_embd past u64', withConfig({ n_embd: 1e30 }), 'ERR_MODEL_INVALID', /config\.json.*n_embd/],
  ['n_layer huge', withConfig({ n_layer: 2 ** 40 }), 'ERR_MODEL_INVALID', /n_layer \(1099511627776\) is larger/],
  [
    'n_layer 3 (more than the file holds)',
    withConfig({ n_layer: 3 }),
    'ERR_MODEL_INVALID',
    /'h\.2\.ln_1\.weight' is missing/,
  ],
  [
    'n_positions huge',
    withConfig({ n_positions: 2 ** 50 }),
    'ERR_MODEL_INVALID',
    /n_positions \(1125899906842624\) is larger/,
  ],
  ['n_positions 2048', withConfig({ n_positions: 2048 }), 'ERR_MODEL_INVALID', /'wpe\.weight' has shape \[1024, 32\]/],
  ['n_inner negative', withConfig({ n_inner: -1 }), 'ERR_MODEL_INVALID', /config\.json.*n_inner/],
  [
    'n_embd not divisible by n_head',
    withConfig({ n_head: 5 }),
    'ERR_MODEL_INVALID',
    /n_embd \(32\) is not divisible by n_head \(5\)/,
  ],
  [
    'layer_norm_epsilon as a string',
    withConfig({ layer_norm_epsilon: '1e-5' }),
    'ERR_MODEL_INVALID',
    /layer_norm_epsilon/,
  ],
  ['eos_token_id -1', withConfig({ eos_token_id: -1 }), 'ERR_MODEL_INVALID', /config\.json.*eos_token_id/],
  [
    'eos_token_id past the vocabulary',
    withConfig({ eos_token_id: 60000 }),
    'ERR_MODEL_INVALID',
    /eos_token_id 60000 is outside/,
  ],
  [
    'an unknown activation',
    withConfig({ activation_function: 'swish' }),
    'ERR_MODEL_INVALID',
    /config\.json: unsupported activation_function 'swish'/,
  ],
  ['config.json empty', () => tinyModelWithFile('config.json', ''), 'ERR_MODEL_INVALID', /config\.json.*EOF/],
  [
    'config.json an array',
    () => tinyModelWithFile('config.json', '[]'),
    'ERR_MODEL_INVALID',
    /holds an array, not a JSON object/,
  ],
  [
    'config.json not UTF-8',
    () => tinyModelWithFile('config.json', Buffer.from([0xff, 0xfe])),
    'ERR_MODEL_INVALID',
    /not UTF-8/,
  ],
  // Model and tokenizer disagree.
  [
    'a tokenizer larger than the model',
    withModelVocab(50000),
    'ERR_MODEL_INVALID',
    /the tokenizer has 50257 tokens but the model only 50000/,
  ],
  // tokenizer.json and its fallback files.
  [
    'tokenizer.json empty',
    () => tinyModelWithFile('tokenizer.json', ''),
    'ERR_MODEL_INVALID',
    /tokenizer\.json.*not a valid tokenizer\.json/,
  ],
  [
    'tokenizer.json garbage',
    () => tinyModelWithFile('tokenizer.json', Buffer.from('\u0000\u0001garbage')),
    'ERR_MODEL_INVALID',
    /not a valid tokenizer\.json/,
  ],
  [
    'tokenizer.json cut in half',
    () => tinyModelWithFile('tokenizer.json', TOKENIZER.subarray(0, TOKENIZER.length / 2)),
    'ERR_MODEL_INVALID',
    /not a valid tokenizer\.json/,
  ],
  [
    'tokenizer.json {}',
    () => tinyModelWithFile('tokenizer.json', '{}'),
    'ERR_MODEL_INVALID',
    /not a valid tokenizer\.json/,
  ],
  ['vocab.json and merges.txt empty', vocabAndMerges('', ''), 'ERR_MODEL_INVALID', /vocab\.json.*cannot build BPE/],
  [
    'merges.txt naming tokens vocab.json lacks',
    vocabAndMerges('{"a":0,"b":1}', '#version: 0.2\nx y\n'),
    'ERR_MODEL_INVALID',
    /cannot build BPE/,
  ],
  [
    'no tokenizer at all',
    () => copyOfTinyModel(['tokenizer.json', 'vocab.json', 'merges.txt']),
    'ERR_MODEL_NOT_FOUND',
    /no tokenizer in .*tokenizer\.json, or vocab\.json with merges\.txt/,
  ],
  // generation_config.json.
  [
    'generation_config.json empty',
    () => tinyModelWithFile('generation_config.json', ''),
    'ERR_MODEL_INVALID',
    /generation_config\.json/,
  ],
  [
    'generation_config.json with a string eos',
    () => tinyModelWithFile('generation_config.json', '{"eos_token_id":"50256"}'),
    'ERR_MODEL_INVALID',
    /generation_config\.json/,
  ],
  // Missing files.
  ['no config.json', () => copyOfTinyModel(['config.json']), 'ERR_MODEL_NOT_FOUND', /config\.json not found/],
  ['no weights', () => copyOfTinyModel(['model.safetensors']), 'ERR_MODEL_NOT_FOUND', /no weights in/],
  // What is not a regular file where one should be.
  ...['config.json', 'model.safetensors', 'tokenizer.json', 'generation_config.json'].flatMap((file) => {
    const cases: Case[] = [
      [`a directory named ${file}`, directoryAt(file), 'ERR_MODEL_INVALID', new RegExp(`${file}.*not a regular file`)],
    ]
    // (Windows lets only privileged processes make symlinks.)
    if (process.platform !== 'win32') {
      const loop = new RegExp(`${file}.*symbolic links`)
      cases.push([`a symlink loop named ${file}`, symlinkLoopAt(file), 'ERR_MODEL_INVALID', loop])
    }
    return cases
  }),
]

for (const [name, makeDir, code, message] of CASES) {
  test(`fromPretrained refuses ${name}`, async (t) => {
    const dir = makeDir()
    try {
      const err = await t.throwsAsync(Gpt2.fromPretrained(dir), { instanceOf: NexttokenError })
      t.is(err?.code, code, err?.message)
      t.regex(err?.message ?? '', message)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
}

// Accepted on purpose, as transformers accepts them.
const ACCEPTED: [name: string, dir: () => string][] = [
  // transformers loads such a checkpoint with a warning ("Some weights ... were not used").
  [
    'tensors the model does not use (an unknown name, a layer past n_layer) are ignored',
    () =>
      tinyModelWithWeights(
        (t) =>
          new Map([
            ...t,
            ['transformer.h.0.attn.rotary.weight', t.get('transformer.ln_f.bias')!],
            ['transformer.h.2.ln_1.weight', t.get('transformer.ln_f.weight')!],
          ]),
      ),
  ],
  // The padded-vocabulary rule (README): rows past the tokenizer's ids are never produced.
  ['a model vocabulary padded past the tokenizer (50304 rows)', withModelVocab(50304)],
  // tokenizer_config.json is not read (the tokenizer is tokenizer.json, or vocab.json + merges.txt).
  ['an empty tokenizer_config.json', () => tinyModelWithFile('tokenizer_config.json', '')],
]

for (const [name, makeDir] of ACCEPTED) {
  test(`fromPretrained accepts ${name}`, async (t) => {
    const dir = makeDir()
    try {
      const model = await Gpt2.fromPretrained(dir)
      const best = await model.nextToken('Hello')
      t.true(best.id < 50257, `a token of the tokenizer: ${best.id}`)
      await model.dispose()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
}
