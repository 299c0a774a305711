// Where the Hub is and where its files are cached: each call's options over the environment,
// read the way Python's huggingface_hub reads it, so that Node and Python share one cache.
import { readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'

/** What `fromPretrained` reports while it downloads (never when everything is cached). */
export interface DownloadProgress {
  /** The file being downloaded, as named in the repo (`'model.safetensors'`). */
  file: string
  /** Bytes of `file` so far, and its size. */
  loaded: number
  total: number
  /** Bytes over every file this load downloads. */
  overall: { loaded: number; total: number }
}

/** Options of `fromPretrained` for repo ids (`'gpt2'`, `'openai-community/gpt2-medium'`). */
export interface HubOptions {
  /** A branch, tag or commit of the repo. @default 'main' */
  revision?: string
  /** The cache directory. @default HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub (~/.cache/huggingface/hub) */
  cacheDir?: string
  /** Only use the cache, never the network. @default HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) set to 1/ON/YES/TRUE */
  offline?: boolean
  /** An access token for private and gated repos; `false`: none. @default HF_TOKEN, else HUGGING_FACE_HUB_TOKEN, else the file at HF_TOKEN_PATH ($HF_HOME/token) */
  token?: string | false
  /** The Hub's address. @default HF_ENDPOINT, else 'https://huggingface.co' */
  endpoint?: string
  /** Called as files download, at most every 100 ms and once at the end of each file. */
  onProgress?: (progress: DownloadProgress) => void
  /** Aborting stops the transfer and rejects with an `AbortError`; the cache is left intact. */
  signal?: AbortSignal
  /** Download the files again even when cached. @default false */
  forceDownload?: boolean
}

export interface HubSettings {
  revision: string
  cacheDir: string
  offline: boolean
  token: string | undefined
  endpoint: string
  /** Seconds to wait for a file's metadata (HF_HUB_ETAG_TIMEOUT). */
  etagTimeoutS: number
  /** Seconds to wait for the next bytes of a download (HF_HUB_DOWNLOAD_TIMEOUT). */
  downloadTimeoutS: number
  /**
   * Seconds a whole download may take, resumes included (NEXTTOKEN_HUB_DOWNLOAD_DEADLINE); unset:
   * scaled to the file's size (lib/hub/http.ts's `deadlineS`).
   */
  downloadDeadlineS: number | undefined
  onProgress: ((progress: DownloadProgress) => void) | undefined
  signal: AbortSignal | undefined
  forceDownload: boolean
}

export const DEFAULT_ENDPOINT = 'https://huggingface.co'

/** huggingface_hub's notion of a true environment variable. */
export function isTrue(value: string | undefined): boolean {
  return value !== undefined && ['1', 'ON', 'YES', 'TRUE'].includes(value.toUpperCase())
}

function expandHome(path: string): string {
  return path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(1)) : path
}

function seconds<T extends number | undefined>(value: string | undefined, fallback: T): number | T {
  const parsed = value === undefined ? Number.NaN : Number(value)
  return Number.isFinite(parsed) && parsed > 0 ? parsed : fallback
}

/** HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface. */
export function hfHome(env: NodeJS.ProcessEnv = process.env): string {
  return expandHome(env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'huggingface'))
}

/** The token a request to the Hub carries, if any. */
function token(option: string | false | undefined, env: NodeJS.ProcessEnv): string | undefined {
  if (option === false) return undefined
  const given = option ?? env.HF_TOKEN ?? env.HUGGING_FACE_HUB_TOKEN
  if (given !== undefined) return given.trim() || undefined
  try {
    return readFileSync(expandHome(env.HF_TOKEN_PATH ?? join(hfHome(env), 'token')), 'utf8').trim() || undefined
  } catch {
    return undefined
  }
}

/** The options of one load over the environment (explicit options win). */
export function hubSettings(options: HubOptions, env: NodeJS.ProcessEnv = process.env): HubSettings {
  const cacheDir = options.cacheDir ?? env.HF_HUB_CACHE ?? env.HUGGINGFACE_HUB_CACHE ?? join(hfHome(env), 'hub')
  return {
    revision: options.revision ?? 'main',
    cacheDir: expandHome(cacheDir),
    // As huggingface_hub: TRANSFORMERS_OFFLINE counts only when HF_HUB_OFFLINE is unset or empty.
    offline: options.offline ?? isTrue(env.HF_HUB_OFFLINE || env.TRANSFORMERS_OFFLINE),
    token: token(options.token, env),
    endpoint: (options.endpoint ?? env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(/\/+$/, ''),
    etagTimeoutS: seconds(env.HF_HUB_ETAG_TIMEOUT, 10),
    downloadTimeoutS: seconds(env.HF_HUB_DOWNLOAD_TIMEOUT, 10),
    downloadDeadlineS: seconds(env.NEXTTOKEN_HUB_DOWNLOAD_DEADLINE, undefined),
    onProgress: options.onProgress,
    signal: options.signal,
    forceDownload: options.forceDownload ?? false,
  }
}
