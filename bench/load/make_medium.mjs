// Writes bench/models/gpt2-medium-shape/: a checkpoint of gpt2-medium's shape (24 layers, 1024
// wide, 16 heads: 1.42 GB of f32) with seeded pseudo-random weights, for timing loads only (its
// numbers mean nothing). The tokenizer and generation files are gpt2-124m's (the same vocabulary);
// run bench/make_checkpoint.py first. Plain Node, no torch: the file is written as safetensors
// directly (an 8-byte header length, the JSON header, the tensors' bytes in header order).
//
//   node bench/load/make_medium.mjs [--force]
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const models = join(dirname(fileURLToPath(import.meta.url)), '..', 'models')
const source = join(models, 'gpt2-124m')
export const MEDIUM = join(models, 'gpt2-medium-shape')
const SHAPE = { n_layer: 24, n_head: 16, n_embd: 1024, vocab_size: 50257, n_positions: 1024 }

/** The checkpoint's tensors in file order: name, shape, and what fills it. */
function tensors() {
  const { n_layer: L, n_embd: E, vocab_size: V, n_positions: P } = SHAPE
  const list = [
    ['transformer.wte.weight', [V, E], 'random'],
    ['transformer.wpe.weight', [P, E], 'random'],
  ]
  for (let l = 0; l < L; l++) {
    const h = `transformer.h.${l}`
    list.push(
      [`${h}.ln_1.weight`, [E], 'one'],
      [`${h}.ln_1.bias`, [E], 'zero'],
      [`${h}.attn.c_attn.weight`, [E, 3 * E], 'random'],
      [`${h}.attn.c_attn.bias`, [3 * E], 'zero'],
      [`${h}.attn.c_proj.weight`, [E, E], 'random'],
      [`${h}.attn.c_proj.bias`, [E], 'zero'],
      [`${h}.ln_2.weight`, [E], 'one'],
      [`${h}.ln_2.bias`, [E], 'zero'],
      [`${h}.mlp.c_fc.weight`, [E, 4 * E], 'random'],
      [`${h}.mlp.c_fc.bias`, [4 * E], 'zero'],
      [`${h}.mlp.c_proj.weight`, [4 * E, E], 'random'],
      [`${h}.mlp.c_proj.bias`, [E], 'zero'],
    )
  }
  list.push(['transformer.ln_f.weight', [E], 'one'], ['transformer.ln_f.bias', [E], 'zero'])
  return list
}

/** Values uniform in ±0.035 (about transformers' normal(0, 0.02) init's spread), seeded. */
function fill(values, kind, state) {
  if (kind === 'one') return values.fill(1)
  if (kind === 'zero') return values.fill(0)
  for (let i = 0; i < values.length; i++) {
    state.x ^= state.x << 13
    state.x ^= state.x >>> 17
    state.x ^= state.x << 5
    values[i] = ((state.x >>> 0) / 2 ** 32 - 0.5) * 0.07
  }
  return values
}

export function makeMedium(force = false) {
  if (!force && existsSync(join(MEDIUM, 'model.safetensors'))) return MEDIUM
  if (!existsSync(join(source, 'tokenizer.json'))) throw new Error(`${source} is missing: run bench/make_checkpoint.py`)
  mkdirSync(MEDIUM, { recursive: true })
  for (const file of [
    'tokenizer.json',
    'vocab.json',
    'merges.txt',
    'tokenizer_config.json',
    'generation_config.json',
  ]) {
    copyFileSync(join(source, file), join(MEDIUM, file))
  }
  const config = {
    ...JSON.parse(readFileSync(join(source, 'config.json'), 'utf8')),
    ...SHAPE,
    n_ctx: SHAPE.n_positions,
  }
  writeFileSync(join(MEDIUM, 'config.json'), `${JSON.stringify(config, null, 2)}\n`)
  const list = tensors()
  const header = { __metadata__: { format: 'pt' } }
  let offset = 0
  for (const [name, shape] of list) {
    const bytes = shape.reduce((a, b) => a * b) * 4
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes] }
    offset += bytes
  }
  const json = Buffer.from(JSON.stringify(header))
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(BigInt(json.length))
  const fd = openSync(join(MEDIUM, 'model.safetensors.tmp'), 'w')
  writeSync(fd, length)
  writeSync(fd, json)
  const state = { x: 1234 }
  for (const [, shape, kind] of list) {
    const values = fill(new Float32Array(shape.reduce((a, b) => a * b)), kind, state)
    writeSync(fd, new Uint8Array(values.buffer))
  }
  closeSync(fd)
  renameSync(join(MEDIUM, 'model.safetensors.tmp'), join(MEDIUM, 'model.safetensors'))
  return MEDIUM
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(makeMedium(process.argv.includes('--force')))
}
