// lm-evaluation-harness against `nexttoken serve`: its `local-completions` model runs two small
// local tasks (multiple choice, scored by loglikelihood; generate_until) through the server, and
// every loglikelihood it reports is compared with `model.score` of the same token ids, every
// generated text with `model.generate`. Needs `pip install "lm-eval[api]==0.4.13" transformers`
// (no torch); runs offline.
//
//   node bench/serve/lm-eval.mjs [--lm-eval path/to/lm_eval] [--model __test__/fixtures/tiny-gpt2]
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { startServer } from './client.mjs'

const require = createRequire(import.meta.url)
const { Gpt2 } = require('../../index.js')
const { values: args } = parseArgs({
  options: {
    'lm-eval': { type: 'string', default: 'lm_eval' },
    model: { type: 'string', default: new URL('../../__test__/fixtures/tiny-gpt2', import.meta.url).pathname },
  },
})
const modelDir = resolve(args.model)

const dir = mkdtempSync(join(tmpdir(), 'nexttoken-lm-eval-'))
const docs = [
  { context: 'The capital of France is', choices: [' Paris', ' London', ' a city'], answer: 0 },
  { context: 'I am learning about generative', choices: [' ai', ' models', ' art'], answer: 0 },
  { context: 'One, two, three,', choices: [' four', ' five'], answer: 0 },
]
writeFileSync(join(dir, 'docs.jsonl'), docs.map((d) => JSON.stringify(d)).join('\n'))
const task = (name, body) =>
  writeFileSync(
    join(dir, `${name}.yaml`),
    `task: ${name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: ${join(dir, 'docs.jsonl')}\ntest_split: test\ndoc_to_text: "{{context}}"\n${body}`,
  )
task(
  'nexttoken_mc',
  'output_type: multiple_choice\ndoc_to_choice: "{{choices}}"\ndoc_to_target: "{{answer}}"\ntarget_delimiter: ""\nmetric_list:\n  - metric: acc\n',
)
task(
  'nexttoken_gen',
  'output_type: generate_until\ndoc_to_target: "{{choices[0]}}"\ngeneration_kwargs:\n  until: ["\\n", "."]\n  max_gen_toks: 16\n  do_sample: false\n  temperature: 0\nmetric_list:\n  - metric: exact_match\n    aggregation: mean\n    higher_is_better: true\n',
)

const server = await startServer(modelDir)
try {
  const modelArgs = `model=gpt2,base_url=${server.url}/v1/completions,tokenizer_backend=huggingface,tokenizer=${modelDir},num_concurrent=4`
  execFileSync(
    args['lm-eval'],
    // --log_samples writes each request's arguments and lm-eval's reading of the answer.
    [
      ...['--model', 'local-completions', '--model_args', modelArgs, '--include_path', dir],
      ...['--tasks', 'nexttoken_mc,nexttoken_gen', '--log_samples', '--output_path', join(dir, 'out')],
    ],
    {
      cwd: dir,
      env: { ...process.env, HF_HUB_OFFLINE: '1', HF_DATASETS_OFFLINE: '1' },
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  )
} finally {
  await server.stop()
}

/** The samples lm-eval logged for `task`. */
function samples(task) {
  const folder = join(dir, 'out', 'gpt2')
  const file = readdirSync(folder).find((name) => name.startsWith(`samples_${task}_`))
  return readFileSync(join(folder, file), 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line))
}

// lm-eval tokenizes context and continuation apart and scores the continuation's tokens.
const model = await Gpt2.fromPretrained(modelDir)
const loglikelihoods = []
for (const sample of samples('nexttoken_mc')) {
  for (const [i, { arg_0: context, arg_1: continuation }] of Object.values(sample.arguments).entries()) {
    const contextIds = [...model.tokenizer.encode(context)]
    const ids = [...contextIds, ...model.tokenizer.encode(continuation)]
    const scored = (await model.score(ids)).tokens.slice(contextIds.length)
    const expected = scored.reduce((sum, t) => sum + t.logprob, 0)
    const [reported] = sample.resps[i]
    loglikelihoods.push({ context, continuation, lmEval: Number(reported[0]), score: expected })
  }
}
const generations = []
for (const sample of samples('nexttoken_gen')) {
  const context = sample.arguments.gen_args_0.arg_0
  const expected = await model.generate([...model.tokenizer.encode(context)], { maxNewTokens: 16, stop: ['\n', '.'] })
  generations.push({ context, lmEval: sample.resps[0][0], generate: expected.completion })
}
await model.dispose()
const maxDiff = Math.max(...loglikelihoods.map((l) => Math.abs(l.lmEval - l.score)))
console.log(
  JSON.stringify(
    {
      loglikelihoods: loglikelihoods.length,
      maxAbsDiffFromScore: maxDiff,
      generations: generations.length,
      generationsDiffering: generations.filter((g) => g.lmEval !== g.generate).length,
      rows: loglikelihoods,
    },
    null,
    2,
  ),
)
