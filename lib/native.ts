// The native addon, loaded once. napi-rs' loader (binding.js) looks for this platform's binary: a
// local build next to it, else the `nexttoken-<platform>` package that npm installs as an optional
// dependency. When neither is there (npm skipped optional dependencies, or the platform has no
// prebuilt binary), the error names the package that is missing.
import type * as Binding from '../binding'
import { NexttokenError } from './errors'

/** The platform package napi-rs names for this machine (npm/<target>/package.json). */
export function platformPackage(platform = process.platform, arch = process.arch): string {
  if (platform === 'linux') {
    // Node's diagnostic report names the glibc it runs on; musl systems have none.
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined
    const glibc = report?.header?.glibcVersionRuntime
    return `nexttoken-linux-${arch}-${glibc ? 'gnu' : 'musl'}`
  }
  if (platform === 'win32') return `nexttoken-win32-${arch}-msvc`
  return `nexttoken-${platform}-${arch}`
}

function load(): typeof Binding {
  try {
    return require('../binding')
  } catch (err) {
    const error = new NexttokenError(
      'ERR_BINARY_NOT_FOUND',
      `no native binary for ${process.platform}-${process.arch}: the package ${platformPackage()} is not installed. ` +
        'npm installs it as an optional dependency of nexttoken: reinstall without --omit=optional / --no-optional ' +
        '(and delete package-lock.json if it was made on another platform), or build from source with Rust (npm run build).',
    )
    ;(error as { cause?: unknown }).cause = err
    throw error
  }
}

export const native = load()
