// Which native addon runs a device, and what `device: 'auto'` picks: decided here only. The default
// addon (lib/native.ts) runs the CPU and, in the macOS arm64 build, Metal. CUDA is a package of its
// own, nexttoken-linux-x64-gnu-cuda (about 50 MB, and it needs the NVIDIA driver to load at all),
// so a CPU install stays small: it is loaded the first time a model asks for 'cuda', after its
// libraries are probed, since `require` of an addon whose libraries are missing fails naming only
// the first one.
import type * as Binding from '../binding'
import { existsSync } from 'node:fs'
import { NexttokenError } from './errors'
import type { Device } from './load-options'
import { native, platformPackage } from './native'

type Addon = typeof Binding

/** The package that holds the CUDA build (npm/linux-x64-gnu-cuda/). */
const CUDA_PACKAGE = 'nexttoken-linux-x64-gnu-cuda'

/**
 * The environment variable that names a CUDA `.node` file to load instead of the package's: a
 * build of scripts/cuda-build.sh that is not installed, as the tests use it.
 */
const CUDA_ADDON_VARIABLE = 'NEXTTOKEN_CUDA_ADDON'

/** The GPUs `'auto'` tries, in order, before the CPU: the first that is available runs the model. */
const AUTO_GPUS: readonly Device[] = ['cuda', 'metal']

let cudaAddon: Addon | undefined

function unavailable(problems: string[], cause?: unknown): NexttokenError {
  const error = new NexttokenError(
    'ERR_BACKEND_UNAVAILABLE',
    `device 'cuda' is not available: ${problems.join('; ')}. ` +
      'The CUDA build runs on H100, H200 and GH200 (compute capability 9.0); docs/install.md lists what it needs.',
  )
  if (cause !== undefined) (error as { cause?: unknown }).cause = cause
  return error
}

/** The CUDA addon, loaded once; an `ERR_BACKEND_UNAVAILABLE` naming everything that is missing. */
function cuda(): Addon {
  if (cudaAddon) return cudaAddon
  if (platformPackage() !== 'nexttoken-linux-x64-gnu') {
    throw unavailable([`the CUDA build is for Linux x64 with glibc only, and this is ${platformPackage()}`])
  }
  const problems: string[] = []
  const path = cudaAddonPath(problems)
  const missing = native.missingCudaLibraries()
  if (missing.length > 0) {
    problems.push(
      `libraries not found: ${missing.join(', ')}; pip installs them in site-packages/nvidia/cu13/lib, ` +
        'which must then be on LD_LIBRARY_PATH',
    )
  }
  if (path === undefined || problems.length > 0) throw unavailable(problems)
  try {
    cudaAddon = require(path) as Addon
  } catch (err) {
    throw unavailable([`${path} could not be loaded (${err instanceof Error ? err.message : String(err)})`], err)
  }
  return cudaAddon
}

/** Where the CUDA addon is: the variable's file, else the installed package's; a problem if neither. */
function cudaAddonPath(problems: string[]): string | undefined {
  const named = process.env[CUDA_ADDON_VARIABLE]
  if (named) {
    if (existsSync(named)) return named
    problems.push(`${CUDA_ADDON_VARIABLE} names ${named}, which does not exist`)
    return undefined
  }
  try {
    return require.resolve(CUDA_PACKAGE)
  } catch {
    problems.push(`the package ${CUDA_PACKAGE} is not installed (npm install ${CUDA_PACKAGE})`)
    return undefined
  }
}

/** The addon that runs `device`: the CUDA package for 'cuda', the default addon otherwise. */
function addonFor(device: string | undefined): Addon {
  return device === 'cuda' ? cuda() : native
}

/**
 * Runs `load` with the addon for `device`; for `'auto'`, with each of `AUTO_GPUS` until one is
 * available (one that is not fails with `ERR_BACKEND_UNAVAILABLE` before any weight is read), else
 * on the CPU.
 */
export async function onDevice<T>(
  device: Device | 'auto' | undefined,
  load: (addon: Addon, device: Device | undefined) => Promise<T>,
): Promise<T> {
  if (device !== 'auto') return load(addonFor(device), device)
  for (const gpu of AUTO_GPUS) {
    try {
      return await load(addonFor(gpu), gpu)
    } catch (err) {
      if (!(err instanceof NexttokenError && err.code === 'ERR_BACKEND_UNAVAILABLE')) throw err
    }
  }
  return load(native, 'cpu')
}
