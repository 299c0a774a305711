// generate() means what transformers' generate() means: the default length, the limits it
// refuses, sampling options checked only when sampling, eos lists, unconditional generation,
// the model's generation_config.json, batch lengths from the padded width, and option names.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import test, { type ExecutionContext } from 'ava'

import { Gpt2, NexttokenError } from '../index'
import { readGolden, TINY_MODEL } from './helpers/fixtures'
import { copyOfTinyModel } from './helpers/model-dirs'

interface GenerateGolden {
  name: string
  text?: string
  promptIds: number[]
  options: Record<string, unknown>
  ids: number[]
  newIds: number[]
}

interface ConfigGolden {
  name: string
  text: string
  generationConfig: Record<string, number>
  ids: number[]
  newIds: number[]
}

interface BatchGolden {
  prompts: { promptIds: number[] }[]
  maxLength: { maxLength: number; newIds: number[][] }
}

const goldens = readGolden<GenerateGolden[]>('generate.json')
const golden = (name: string) => goldens.find((g) => g.name === name)!
const model = Gpt2.fromPretrained(TINY_MODEL)

async function rejects(t: ExecutionContext, call: Promise<unknown>, code: string, message?: RegExp) {
  const err = await t.throwsAsync(call, { instanceOf: NexttokenError })
  t.is(err?.code, code, err?.message)
  if (message) t.regex(err!.message, message)
}

test('no length option gives 20 new tokens, as transformers (not 20 in all)', async (t) => {
  const m = await model
  const g = golden('default-length')
  t.deepEqual(g.options, { doSample: false, padTokenId: 50256 }, 'the golden passes no length')
  t.true(g.promptIds.length > 20)
  const result = await m.generate(g.text!)
  t.deepEqual(result.newIds, g.newIds)
  t.is(result.newIds.length, 20)
})

test('a prompt at least maxLength long, and maxNewTokens 0, are refused as transformers refuses them', async (t) => {
  const m = await model
  const ids = m.tokenizer.encode('one two three four five six')
  await rejects(
    t,
    m.generate(ids, { maxLength: ids.length }),
    'ERR_INVALID_ARG',
    new RegExp(`${ids.length} tokens and maxLength is ${ids.length}`),
  )
  await rejects(t, m.generate(ids, { maxLength: 3 }), 'ERR_INVALID_ARG', /maxLength is 3/)
  await rejects(t, m.generate(ids, { maxNewTokens: 0 }), 'ERR_INVALID_ARG', /maxNewTokens must be at least 1/)
  // The default length is capped at nPositions: a full context leaves no room.
  const full = Array.from({ length: m.config.nPositions }, (_, i) => i % 50000)
  await rejects(t, m.generate(full), 'ERR_INVALID_ARG', /default length/)
})

test('sampling options are ignored without doSample; with it, temperature <= 0 says to use greedy', async (t) => {
  const m = await model
  const g = golden('meaning-of-life')
  const ignored = { ...g.options, temperature: 0, topP: 0, minP: 5 }
  t.deepEqual((await m.generate(g.text!, ignored)).newIds, g.newIds)
  await rejects(
    t,
    m.generate(g.text!, { doSample: true, temperature: 0 }),
    'ERR_INVALID_ARG',
    /use doSample: false for greedy/,
  )
  await rejects(t, m.generate(g.text!, { doSample: true, temperature: -1 }), 'ERR_INVALID_ARG', /doSample: false/)
})

test('a temperature so small that the logits overflow gives the greedy tokens', async (t) => {
  const m = await model
  const g = golden('meaning-of-life')
  for (const temperature of [1e-38, 1e-45]) {
    const sampled = await m.generate(g.text!, { ...g.options, doSample: true, temperature, topK: 0, seed: 3 })
    t.deepEqual(sampled.newIds, g.newIds, `temperature ${temperature}`)
  }
})

test('eosTokenId takes a list: any of them ends the sequence', async (t) => {
  const m = await model
  const g = golden('eos-list')
  t.true(Array.isArray(g.options.eosTokenId))
  const result = await m.generate(g.promptIds, g.options)
  t.deepEqual(result.ids, g.ids)
  t.is(result.stopReason, 'eos')
  t.true((g.options.eosTokenId as number[]).includes(result.newIds.at(-1)!))
})

test('an empty input starts from the BOS token, as transformers does without input ids', async (t) => {
  const m = await model
  const g = golden('unconditional')
  for (const input of ['', []]) {
    const result = await m.generate(input, { maxNewTokens: 12 })
    t.deepEqual(result.ids, g.ids)
    t.is(result.ids[0], m.generationConfig.bosTokenId!)
  }
  const streamed = []
  for await (const step of m.stream('', { maxNewTokens: 12 })) streamed.push(step.id)
  t.deepEqual(streamed, g.newIds)
})

test("generation_config.json supplies the model's defaults; call options override them", async (t) => {
  const cases = readGolden<ConfigGolden[]>('generation-config.json')
  t.true(cases.length >= 2)
  for (const c of cases) {
    const dir = copyOfTinyModel()
    const base = { bos_token_id: 50256, eos_token_id: 50256 }
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ ...base, ...c.generationConfig }))
    const m = await Gpt2.fromPretrained(dir)
    t.deepEqual((await m.generate(c.text)).ids, c.ids, c.name)
    const defaults = m.generationConfig
    if (c.generationConfig.max_new_tokens) {
      t.is(defaults.maxNewTokens, c.generationConfig.max_new_tokens)
      t.is(defaults.repetitionPenalty, c.generationConfig.repetition_penalty)
      t.is((await m.generate(c.text, { maxNewTokens: 3 })).newIds.length, 3, 'the call wins')
    } else {
      t.is(defaults.maxLength, c.generationConfig.max_length)
    }
    await m.dispose()
  }
})

test('generationConfig shows the defaults a call gets', async (t) => {
  const m = await model
  t.deepEqual(m.generationConfig, {
    maxLength: null,
    maxNewTokens: null,
    doSample: false,
    temperature: 1,
    topK: 50,
    topP: 1,
    minP: null,
    repetitionPenalty: 1,
    noRepeatNgramSize: 0,
    eosTokenId: [50256],
    padTokenId: null,
    bosTokenId: 50256,
    minLength: 0,
    minNewTokens: null,
    badWordsIds: [],
    sequenceBias: [],
    suppressTokens: [],
    beginSuppressTokens: [],
    forcedEosTokenId: [],
    exponentialDecayLengthPenalty: null,
    typicalP: 1,
    epsilonCutoff: 0,
    etaCutoff: 0,
    renormalizeLogits: false,
    stopStrings: [],
    numReturnSequences: 1,
    numBeams: 1,
    lengthPenalty: 1,
    earlyStopping: false,
  })
})

test("generation_config.json's processors and stop strings are defaults too", async (t) => {
  const plain = await (await model).generate('Hello, world', { maxNewTokens: 4 })
  const first = plain.newIds[0]
  const dir = copyOfTinyModel()
  // sequence_bias as transformers saves its dict: Python tuples written out as keys.
  const settings = {
    suppress_tokens: [first],
    sequence_bias: { '(262, 3797)': -1.5 },
    stop_strings: 'END',
    min_new_tokens: 2,
  }
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: 50256, ...settings }))
  const m = await Gpt2.fromPretrained(dir)
  const defaults = m.generationConfig
  t.deepEqual(defaults.suppressTokens, [first])
  t.deepEqual(defaults.sequenceBias, [[[262, 3797], -1.5]])
  t.deepEqual(defaults.stopStrings, ['END'])
  t.is(defaults.minNewTokens, 2)
  t.false((await m.generate('Hello, world', { maxNewTokens: 4 })).newIds.includes(first))
  t.deepEqual(
    (await m.generate('Hello, world', { maxNewTokens: 4, suppressTokens: [] })).newIds,
    plain.newIds,
    'the call wins',
  )
  await m.dispose()
})

test("generateBatch's maxLength counts from the longest prompt, as transformers' padded batch", async (t) => {
  const m = await model
  const batch = readGolden<BatchGolden>('batch.json')
  const results = await m.generateBatch(
    batch.prompts.map((p) => p.promptIds),
    { maxLength: batch.maxLength.maxLength },
  )
  results.forEach((result, i) => {
    t.deepEqual(result.newIds, batch.maxLength.newIds[i], `row ${i}`)
  })
})

test('unknown option names are refused with the right name suggested', async (t) => {
  const m = await model
  await rejects(
    t,
    m.generate('Hi', { max_new_tokens: 5 } as never),
    'ERR_INVALID_ARG',
    /unknown option 'max_new_tokens': did you mean 'maxNewTokens'\?/,
  )
  await rejects(t, m.generate('Hi', { topk: 5 } as never), 'ERR_INVALID_ARG', /did you mean 'topK'/)
  await rejects(t, m.generate('Hi', { beams: 2 } as never), 'ERR_INVALID_ARG', /unknown option 'beams'$/)
  await rejects(t, m.stream('Hi', { do_sample: true } as never).next(), 'ERR_INVALID_ARG', /doSample/)
})
