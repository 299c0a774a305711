// The one-shot commands: next, generate, download, cache ls.
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { Gpt2 } from '../gpt2'
import type { Dtype, LoadOptions } from '../load-options'
import { resolvePretrained } from '../hub/index'
import { hubSettings } from '../hub/settings'
import { bytes, canDrawBar, ProgressReporter, safeJson, table, textFor, visible } from './format'
import { type Io, numberOption, oneText, UsageError, type Values } from './args'

/** Loads `--model` (with `options` besides), drawing download progress on stderr (stdout stays for the results). */
export async function loadModel(values: Values, io: Io, options: LoadOptions = {}): Promise<Gpt2> {
  const progress = new ProgressReporter(io.stderr, canDrawBar(io.stderr, io.env))
  try {
    const dtype = values.dtype as Dtype | undefined // checked by the library (ERR_INVALID_ARG)
    const packedCacheDir = values['packed-cache'] as string | undefined
    return await Gpt2.fromPretrained(String(values.model), {
      ...options,
      dtype,
      packedCacheDir,
      onProgress: progress.report,
      signal: io.signal,
    })
  } finally {
    progress.done()
  }
}

export type Candidates = Awaited<ReturnType<Gpt2['topK']>>

export function topOption(values: Values): number {
  const top = numberOption(values, 'top') ?? 5
  if (!Number.isInteger(top) || top < 1 || top > 50)
    throw new UsageError(`--top takes a whole number from 1 to 50; got ${top}`)
  return top
}

export async function next(values: Values, text: string[], io: Io): Promise<void> {
  const input = oneText(text)
  const top = topOption(values)
  await using model = await loadModel(values, io)
  const ids = [...model.tokenizer.encode(input)]
  const candidates = await model.topK(ids, top)
  const greedy = candidates[0]
  if (values.json) {
    io.stdout.write(`${safeJson({ input, ids, top: candidates, next: greedy })}\n`)
    return
  }
  const rows = candidates.map((c) => [c.id, visible(c.token), c.p.toFixed(4)])
  io.stdout.write(
    `${table(['id', 'token', 'p'], rows)}\n\nnext: ${greedy.id} ${visible(greedy.token)} (p = ${greedy.p.toFixed(4)})\n`,
  )
}

export async function generate(values: Values, text: string[], io: Io): Promise<void> {
  const input = oneText(text)
  const options = {
    maxLength: numberOption(values, 'max-length'),
    maxNewTokens: numberOption(values, 'max-new-tokens'),
    doSample: values.sample === true ? true : undefined,
    temperature: numberOption(values, 'temperature'),
    topK: numberOption(values, 'top-k'),
    topP: numberOption(values, 'top-p'),
    seed: numberOption(values, 'seed'),
    repetitionPenalty: numberOption(values, 'repetition-penalty'),
  }
  // Options left out stay out: the model's generation config and transformers' defaults apply.
  const set = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined))
  await using model = await loadModel(values, io)
  if (values.json) {
    const result = await model.generate(input, { ...set, signal: io.signal })
    io.stdout.write(`${safeJson(result)}\n`)
    return
  }
  const shown = textFor(io.stdout, values.raw === true)
  const stream = model.stream(input, { ...set, signal: io.signal })
  for await (const step of stream) io.stdout.write(shown(step.text))
  io.stdout.write('\n')
}

export async function download(values: Values, text: string[], io: Io): Promise<void> {
  const repoId = oneText(text, 'repo id')
  const progress = new ProgressReporter(io.stdout, canDrawBar(io.stdout, io.env))
  const revision = typeof values.revision === 'string' ? values.revision : undefined
  let dir: string
  try {
    dir = await resolvePretrained(repoId, { revision, onProgress: progress.report, signal: io.signal }, 'model')
  } finally {
    progress.done()
  }
  if (dir === repoId) throw new UsageError(`'${repoId}' is a local path, not a repo id`)
  io.stdout.write(`${repoId} is in the cache: ${dir}\n`)
}

interface CachedModel {
  id: string
  revision: string
  commit: string
  size: number
  path: string
}

/** GPT-2 snapshots in the cache, with the refs that point at them. */
async function cachedModels(cacheDir: string): Promise<CachedModel[]> {
  const found: CachedModel[] = []
  const repos = (await fs.readdir(cacheDir).catch(() => [])).filter((d) => d.startsWith('models--')).sort()
  for (const folder of repos) {
    const id = folder.slice('models--'.length).replace('--', '/')
    const storage = join(cacheDir, folder)
    const refs = new Map<string, string[]>()
    for (const ref of await fs.readdir(join(storage, 'refs')).catch(() => [])) {
      const commit = (await fs.readFile(join(storage, 'refs', ref), 'utf8').catch(() => '')).trim()
      refs.set(commit, [...(refs.get(commit) ?? []), ref])
    }
    for (const commit of (await fs.readdir(join(storage, 'snapshots')).catch(() => [])).sort()) {
      const path = join(storage, 'snapshots', commit)
      const config = await fs.readFile(join(path, 'config.json'), 'utf8').catch(() => undefined)
      if (!config || JSON.parse(config).model_type !== 'gpt2') continue
      let size = 0
      for (const file of await fs.readdir(path, { recursive: true })) {
        const stat = await fs.stat(join(path, String(file))).catch(() => undefined)
        if (stat?.isFile()) size += stat.size
      }
      found.push({ id, revision: refs.get(commit)?.join(',') ?? commit.slice(0, 12), commit, size, path })
    }
  }
  return found
}

export async function cacheLs(values: Values, text: string[], io: Io): Promise<void> {
  if (text.length !== 1 || text[0] !== 'ls') throw new UsageError("the cache command has one subcommand: 'ls'")
  const cacheDir = hubSettings({}, io.env).cacheDir
  const models = await cachedModels(cacheDir)
  if (values.json) {
    io.stdout.write(`${safeJson(models)}\n`)
    return
  }
  if (models.length === 0) {
    io.stdout.write(`no GPT-2 models in ${cacheDir}\n`)
    return
  }
  const rows = models.map((m) => [m.id, m.revision, bytes(m.size), m.path])
  io.stdout.write(`${table(['model', 'revision', 'size', 'path'], rows)}\n`)
}
