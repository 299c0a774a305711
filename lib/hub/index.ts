// `fromPretrained`'s first step: a local directory as it is, a Hub repo id as the snapshot
// directory of the shared Hugging Face cache that holds its files.
import { promises as fs } from 'node:fs'
import { AbortError, invalidArg } from '../errors'
import { badRevision } from './cache'
import { type HubOptions, hubSettings } from './settings'
import { isRepoId, snapshotDir, type Wanted } from './snapshot'

export type { DownloadProgress, HubOptions } from './settings'

/**
 * What to load `nameOrPath` from: itself if it is a directory or a `.gguf` file (or names no
 * repo), else the Hub's snapshot directory.
 */
export async function resolvePretrained(nameOrPath: string, options: HubOptions, wanted: Wanted): Promise<string> {
  checkHubOptions(options)
  const isDirectory = await fs.stat(nameOrPath).then(
    (stat) => stat.isDirectory(),
    () => false,
  )
  // `model.gguf` also reads as a repo id: a name ending in .gguf is a local file (GGUF from the
  // Hub is not supported), reported as missing by the core rather than looked up online.
  const isGguf = /\.gguf$/i.test(nameOrPath)
  if (isDirectory || isGguf || !isRepoId(nameOrPath)) return nameOrPath
  if (options.signal?.aborted) throw new AbortError('download aborted', undefined, { cause: options.signal.reason })
  return snapshotDir(nameOrPath, hubSettings(options), wanted)
}

function checkHubOptions(options: HubOptions) {
  const { revision, cacheDir, offline, token, endpoint, onProgress, signal, forceDownload } = options
  const string = (name: string, value: unknown) => {
    if (value !== undefined && (typeof value !== 'string' || value === ''))
      throw invalidArg(`${name} must be a non-empty string`)
  }
  string('revision', revision)
  const bad = revision === undefined ? undefined : badRevision(revision)
  if (bad) throw invalidArg(`revision ${JSON.stringify(revision)} is not a branch, tag or commit name: it ${bad}`)
  string('cacheDir', cacheDir)
  if (cacheDir?.includes('\0')) throw invalidArg('cacheDir must not contain a NUL character')
  string('endpoint', endpoint)
  if (endpoint !== undefined && !URL.canParse(endpoint)) throw invalidArg(`endpoint must be a URL; got ${endpoint}`)
  if (token !== undefined && token !== false) string('token', token)
  for (const [name, value] of [
    ['offline', offline],
    ['forceDownload', forceDownload],
  ] as const) {
    if (value !== undefined && typeof value !== 'boolean') throw invalidArg(`${name} must be a boolean`)
  }
  if (onProgress !== undefined && typeof onProgress !== 'function') throw invalidArg('onProgress must be a function')
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArg('signal must be an AbortSignal')
}
