// The repos the stand-in Hub serves in tests: the fixture model in each layout the Hub has.
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { FIXTURES, TINY_MODEL } from './fixtures'
import { commitOf, type HubRepo, tinyModelFiles } from './hub-server'
import { readSafetensors, type StoredTensor, writeSafetensors } from './safetensors'

const TOKENIZER = ['tokenizer.json', 'tokenizer_config.json', 'vocab.json', 'merges.txt']

/** Two shards and their index, from the fixture's model.safetensors. */
function shardedWeights(): Record<string, Buffer> {
  const tensors = [...readSafetensors(join(TINY_MODEL, 'model.safetensors'))].sort(([a], [b]) => a.localeCompare(b))
  const dir = mkdtempSync(join(tmpdir(), 'nexttoken-shards-'))
  const files: Record<string, Buffer> = {}
  const weightMap: Record<string, string> = {}
  const half = Math.ceil(tensors.length / 2)
  ;[tensors.slice(0, half), tensors.slice(half)].forEach((part, i) => {
    const name = `model-0000${i + 1}-of-00002.safetensors`
    writeSafetensors(join(dir, name), new Map<string, StoredTensor>(part))
    files[name] = readFileSync(join(dir, name))
    for (const [tensor] of part) weightMap[tensor] = name
  })
  files['model.safetensors.index.json'] = Buffer.from(JSON.stringify({ metadata: {}, weight_map: weightMap }))
  return files
}

function repo(files: Record<string, Buffer>, extra: Partial<HubRepo> = {}): HubRepo {
  const commit = commitOf(files)
  return { refs: { main: commit }, commits: { [commit]: files }, ...extra }
}

export const TINY = 'nexttoken-test/tiny-gpt2'

/** The fixture model, with an older commit (tag `v1`) whose generation config differs. */
function tinyRepo(): HubRepo {
  const files = tinyModelFiles(['config.json', 'model.safetensors', 'generation_config.json', ...TOKENIZER])
  const generation = JSON.parse(files['generation_config.json'].toString())
  const old = { ...files, 'generation_config.json': Buffer.from(JSON.stringify({ ...generation, max_new_tokens: 3 })) }
  const [main, v1] = [commitOf(files), commitOf(old, 'v1')]
  return { refs: { main, v1 }, commits: { [main]: files, [v1]: old }, aliases: ['tiny-gpt2'] }
}

export function hubRepos(): Record<string, HubRepo> {
  const base = tinyModelFiles(['config.json', ...TOKENIZER])
  return {
    [TINY]: tinyRepo(),
    'nexttoken-test/sharded': repo({ ...base, ...shardedWeights() }),
    // No generation_config.json, and only PyTorch weights, as many fine-tunes on the Hub.
    'nexttoken-test/pytorch': repo({
      ...base,
      'pytorch_model.bin': readFileSync(join(FIXTURES, 'pytorch', 'pytorch_model.bin')),
    }),
    // No tokenizer.json: the tokenizer comes from vocab.json + merges.txt.
    'nexttoken-test/vocab-only': repo(tinyModelFiles(['config.json', 'model.safetensors', 'vocab.json', 'merges.txt'])),
    'nexttoken-test/gated': repo(tinyModelFiles(['config.json', 'model.safetensors', ...TOKENIZER]), {
      gatedToken: 'hf_valid_token',
    }),
    'nexttoken-test/no-config': repo(tinyModelFiles(['model.safetensors', ...TOKENIZER])),
  }
}
