// The Hugging Face cache, byte-compatible with Python's huggingface_hub:
//   <cache>/models--{org}--{name}/blobs/{etag}            file contents, named by their etag
//                                /refs/{revision}         the commit a branch or tag points to (no newline)
//                                /snapshots/{commit}/{file}  relative symlinks to the blobs
//                                /.no_exist/{commit}/{file}  markers for files the repo lacks
//   <cache>/CACHEDIR.TAG
import { randomBytes } from 'node:crypto'
import { constants, promises as fs } from 'node:fs'
import { dirname, isAbsolute, join, relative, sep } from 'node:path'
import { NexttokenError } from '../errors'

/** A full commit hash: such a revision needs no `refs/` lookup. */
export const COMMIT = /^[0-9a-f]{40}$/

/**
 * Why `revision` is no name git would give a branch or tag (`git check-ref-format
 * --allow-onelevel`), or undefined when it is one. It names a file under `refs/` in the cache,
 * and `refs/pr/1` (the Hub's pull requests) is one.
 */
export function badRevision(revision: string): string | undefined {
  if (revision.length > 255) return 'is longer than 255 characters'
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses
  if (/[\x00-\x20\x7f~^:?*[\\]/.test(revision)) return 'holds a space, a control character or one of ~ ^ : ? * [ \\'
  if (revision.includes('..')) return "holds '..'"
  if (revision.includes('@{')) return "holds '@{'"
  if (revision === '@') return "is '@'"
  if (revision.startsWith('/') || revision.endsWith('/') || revision.includes('//'))
    return 'has an empty path component'
  if (revision.endsWith('.')) return "ends with '.'"
  if (revision.split('/').some((part) => part.startsWith('.') || part.endsWith('.lock'))) {
    return "has a component that starts with '.' or ends with '.lock'"
  }
  return undefined
}

/**
 * `base` joined with `parts`, asserted to lie under `base`: the names come from options, from the
 * Hub's headers and from a repo's files, and each is checked where it enters; this is the last
 * line, so that no name that slipped through can read or write outside the cache.
 */
export function under(base: string, ...parts: string[]): string {
  const path = join(base, ...parts)
  const rel = relative(base, path)
  if (
    parts.some((part) => part.includes('\0')) ||
    rel === '' ||
    rel === '..' ||
    rel.startsWith(`..${sep}`) ||
    isAbsolute(rel)
  ) {
    throw new NexttokenError('ERR_INVALID_ARG', `${JSON.stringify(parts.join('/'))} does not name a file under ${base}`)
  }
  return path
}

export class RepoCache {
  /** `models--{org}--{name}` in the cache directory. */
  readonly storage: string

  constructor(
    readonly cacheDir: string,
    readonly repoId: string,
  ) {
    this.storage = under(cacheDir, `models--${repoId.split('/').join('--')}`)
  }

  /** The commit `revision` names in the cache: itself when it is one, else what `refs/` says. */
  async commitOf(revision: string): Promise<string | undefined> {
    if (COMMIT.test(revision)) return revision
    const path = under(this.storage, 'refs', revision)
    try {
      const commit = (await fs.readFile(path, 'utf8')).trim()
      return COMMIT.test(commit) ? commit : undefined
    } catch {
      return undefined
    }
  }

  /** Records that `revision` (a branch or tag) points to `commit`. */
  async writeRef(revision: string, commit: string): Promise<void> {
    if (revision === commit) return
    const path = under(this.storage, 'refs', revision)
    const current = await fs.readFile(path, 'utf8').catch(() => undefined)
    if (current === commit) return
    await fs.mkdir(dirname(path), { recursive: true })
    await replaceFile(path, commit)
  }

  snapshot(commit: string, file: string): string {
    return under(under(join(this.storage, 'snapshots'), commit), ...file.split('/'))
  }

  blob(etag: string): string {
    return under(join(this.storage, 'blobs'), etag)
  }

  private noExist(commit: string, file: string): string {
    return under(under(join(this.storage, '.no_exist'), commit), ...file.split('/'))
  }

  /** What the cache knows of `file` at `commit`: its path, that the repo lacks it, or nothing. */
  async lookup(commit: string, file: string): Promise<{ path: string } | 'missing' | undefined> {
    const path = this.snapshot(commit, file)
    if (await exists(path)) return { path }
    if (await exists(this.noExist(commit, file))) return 'missing'
    return undefined
  }

  /** Remembers that the repo has no `file` at `commit`, so that offline loads know too. */
  async markMissing(commit: string, file: string): Promise<void> {
    const path = this.noExist(commit, file)
    await fs.mkdir(dirname(path), { recursive: true })
    await (await fs.open(path, 'a')).close()
  }

  /**
   * Points the snapshot's `file` at the blob: a relative symlink, or a copy where links fail. Made
   * under a temporary name and renamed over the pointer, so that a concurrent load of the same
   * snapshot (reading it, or linking the same file) never finds the pointer missing.
   */
  async link(commit: string, file: string, blob: string): Promise<string> {
    const pointer = this.snapshot(commit, file)
    await fs.mkdir(dirname(pointer), { recursive: true })
    const tmp = `${pointer}.${randomBytes(4).toString('hex')}.tmp`
    try {
      try {
        await fs.symlink(relative(dirname(pointer), blob), tmp)
      } catch {
        await fs.copyFile(blob, tmp) // file systems without symlinks (Python copies there too)
      }
      await fs.rename(tmp, pointer)
    } finally {
      await fs.rm(tmp, { force: true })
    }
    return pointer
  }

  /** A unique temporary name next to the blob, renamed into place once complete. */
  incomplete(etag: string): string {
    return `${this.blob(etag)}.${randomBytes(4).toString('hex')}.incomplete`
  }
}

/** Marks the cache directory for backup tools (https://bford.info/cachedir/), as Python does. */
export async function tagCacheDir(cacheDir: string): Promise<void> {
  const tag = join(cacheDir, 'CACHEDIR.TAG')
  if (await exists(tag)) return
  await fs.mkdir(cacheDir, { recursive: true })
  const text =
    'Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by huggingface_hub.\n# For information about cache directory tags, see:\n#\thttps://bford.info/cachedir/\n'
  await fs.writeFile(tag, text, { flag: 'wx' }).catch(() => {})
}

async function exists(path: string): Promise<boolean> {
  try {
    await fs.access(path, constants.F_OK)
    return true
  } catch {
    return false
  }
}

/** Writes `path` through a temporary file and a rename, so that readers never see half of it. */
async function replaceFile(path: string, text: string): Promise<void> {
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`
  await fs.writeFile(tmp, text)
  await fs.rename(tmp, path)
}
