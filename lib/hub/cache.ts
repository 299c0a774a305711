// The Hugging Face cache, byte-compatible with Python's huggingface_hub:
//   <cache>/models--{org}--{name}/blobs/{etag}            file contents, named by their etag
//                                /refs/{revision}         the commit a branch or tag points to (no newline)
//                                /snapshots/{commit}/{file}  relative symlinks to the blobs
//                                /.no_exist/{commit}/{file}  markers for files the repo lacks
//   <cache>/CACHEDIR.TAG
import { randomBytes } from 'node:crypto'
import { constants, promises as fs } from 'node:fs'
import { dirname, join, relative } from 'node:path'

/** A full commit hash: such a revision needs no `refs/` lookup. */
export const COMMIT = /^[0-9a-f]{40}$/

export class RepoCache {
  /** `models--{org}--{name}` in the cache directory. */
  readonly storage: string

  constructor(
    readonly cacheDir: string,
    readonly repoId: string,
  ) {
    this.storage = join(cacheDir, `models--${repoId.split('/').join('--')}`)
  }

  /** The commit `revision` names in the cache: itself when it is one, else what `refs/` says. */
  async commitOf(revision: string): Promise<string | undefined> {
    if (COMMIT.test(revision)) return revision
    try {
      const commit = (await fs.readFile(join(this.storage, 'refs', revision), 'utf8')).trim()
      return COMMIT.test(commit) ? commit : undefined
    } catch {
      return undefined
    }
  }

  /** Records that `revision` (a branch or tag) points to `commit`. */
  async writeRef(revision: string, commit: string): Promise<void> {
    if (revision === commit) return
    const path = join(this.storage, 'refs', revision)
    const current = await fs.readFile(path, 'utf8').catch(() => undefined)
    if (current === commit) return
    await fs.mkdir(dirname(path), { recursive: true })
    await replaceFile(path, commit)
  }

  snapshot(commit: string, file: string): string {
    return join(this.storage, 'snapshots', commit, ...file.split('/'))
  }

  blob(etag: string): string {
    return join(this.storage, 'blobs', etag)
  }

  private noExist(commit: string, file: string): string {
    return join(this.storage, '.no_exist', commit, ...file.split('/'))
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

  /** Points the snapshot's `file` at the blob: a relative symlink, or a copy where links fail. */
  async link(commit: string, file: string, blob: string): Promise<string> {
    const pointer = this.snapshot(commit, file)
    await fs.mkdir(dirname(pointer), { recursive: true })
    await fs.rm(pointer, { force: true })
    try {
      await fs.symlink(relative(dirname(pointer), blob), pointer)
    } catch (err) {
      // Another load linked it in the meantime: the same blob, since the etag named it.
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return pointer
      await fs.copyFile(blob, pointer) // file systems without symlinks (Python copies there too)
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
