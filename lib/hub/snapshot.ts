// The files a model (or a tokenizer) needs from a Hub repo, in transformers' order, gathered into
// one snapshot directory of the cache that the native loader reads like any model directory.
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { NexttokenError } from '../errors'
import { under } from './cache'
import { Repo, type Located } from './files'
import type { DownloadProgress, HubSettings } from './settings'

export type Wanted = 'model' | 'tokenizer'

/** How often progress is reported at most (and always at the end of each file). */
const PROGRESS_EVERY_MS = 100

/** A repo id as huggingface_hub accepts one: `name` or `org/name`, no `..` or `--`. */
export function isRepoId(name: string): boolean {
  return (
    /^([\w.-]+\/)?[\w.-]+$/.test(name) &&
    !name.includes('..') &&
    !name.includes('--') &&
    !/^[.-]/.test(name) &&
    name.length <= 96
  )
}

/**
 * Resolves `repoId` at the settings' revision to a snapshot directory holding every file `wanted`
 * needs, downloading what the cache lacks. Every file of one load comes from the commit the first
 * one resolved to, so that a push to the repo mid-load cannot mix two versions.
 */
export async function snapshotDir(repoId: string, settings: HubSettings, wanted: Wanted): Promise<string> {
  const repo = new Repo(repoId, settings)
  const plan: Located[] = []
  let revision = settings.revision
  const locate = async (file: string, required: boolean): Promise<Located | undefined> => {
    const located = await repo.locate(revision, file)
    if (located.commit) revision = located.commit
    if (located.kind === 'missing') {
      if (required) throw missing(repoId, settings.revision, [file])
      return undefined
    }
    plan.push(located)
    return located
  }
  const firstOf = async (...files: string[]): Promise<Located | undefined> => {
    for (const file of files) {
      const located = await locate(file, false)
      if (located) return located
    }
    return undefined
  }

  if (wanted === 'model') {
    await locate('config.json', true)
    const weights = await firstOf('model.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin')
    if (!weights)
      throw missing(repoId, settings.revision, [
        'model.safetensors',
        'model.safetensors.index.json',
        'pytorch_model.bin',
      ])
    if (weights.file === 'model.safetensors.index.json') {
      // The shards are known once the index is read: fetch it now.
      const index = await fetchNow(repo, plan.pop() as Located)
      for (const shard of await shardsOf(index)) await locate(shard, true)
      plan.push({ kind: 'cached', file: weights.file, commit: revision, path: index })
    }
    await locate('generation_config.json', false)
  }
  if (!(await firstOf('tokenizer.json'))) {
    await locate('vocab.json', true)
    await locate('merges.txt', true)
  }
  await locate('tokenizer_config.json', false)

  await downloadAll(repo, plan, settings.onProgress)
  return under(join(repo.cache.storage, 'snapshots'), revision)
}

function missing(repoId: string, revision: string, files: string[]): NexttokenError {
  const what = files.length === 1 ? files[0] : `any of ${files.join(', ')}`
  return new NexttokenError('ERR_MODEL_NOT_FOUND', `${repoId} has no ${what} at revision '${revision}'`)
}

async function fetchNow(repo: Repo, located: Located): Promise<string> {
  if (located.kind === 'cached') return located.path
  if (located.kind === 'missing') throw new Error('unreachable: a missing file was planned')
  return repo.fetch(located, () => {})
}

/**
 * A shard's file name as the index may give it: letters, digits, `_`, `.` and `-`, in the
 * snapshot's own folder (transformers names them `model-00001-of-00002.safetensors`).
 */
const SHARD_NAME = /^[\w.-]{1,255}$/

/** The shard files a `model.safetensors.index.json` names. */
async function shardsOf(indexPath: string): Promise<string[]> {
  let index: { weight_map?: unknown } | null
  try {
    index = JSON.parse(await fs.readFile(indexPath, 'utf8'))
  } catch (err) {
    throw new NexttokenError('ERR_MODEL_INVALID', `${indexPath}: not valid JSON (${(err as Error).message})`)
  }
  const map = index?.weight_map
  const shards = [...new Set(map !== null && typeof map === 'object' ? Object.values(map) : [])].sort()
  if (shards.length === 0) throw new NexttokenError('ERR_MODEL_INVALID', `${indexPath} names no usable shard files`)
  for (const shard of shards) {
    if (typeof shard !== 'string' || !SHARD_NAME.test(shard) || /^\.+$/.test(shard)) {
      throw new NexttokenError(
        'ERR_MODEL_INVALID',
        `${indexPath} names a shard ${JSON.stringify(shard)}: a shard is a file name of letters, digits, '_', '.' and '-'`,
      )
    }
  }
  return shards as string[]
}

/** Downloads the planned files one after the other, reporting throttled progress. */
async function downloadAll(repo: Repo, plan: Located[], onProgress: HubSettings['onProgress']): Promise<void> {
  const downloads = plan.filter((l): l is Extract<Located, { kind: 'download' }> => l.kind === 'download')
  const total = downloads.reduce((sum, l) => sum + (l.meta.size ?? 0), 0)
  let done = 0
  let lastReport = 0
  for (const located of downloads) {
    const fileTotal = located.meta.size ?? 0
    const report = (loaded: number, final: boolean) => {
      const now = Date.now()
      if (!onProgress || (!final && now - lastReport < PROGRESS_EVERY_MS)) return
      lastReport = now
      const progress: DownloadProgress = {
        file: located.file,
        loaded,
        total: fileTotal,
        overall: { loaded: done + loaded, total },
      }
      onProgress(progress)
    }
    await repo.fetch(located, (loaded) => report(loaded, false))
    report(fileTotal, true)
    done += fileTotal
  }
}
