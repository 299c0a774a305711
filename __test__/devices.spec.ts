// Choosing a device: 'cuda' loads its own package only when asked and, where that package, the
// NVIDIA driver or CUDA's libraries are missing, fails with a coded error naming them (never a
// crash); 'metal' off a Mac, likewise; 'auto' falls back to the CPU and says so.
import { existsSync } from 'node:fs'
import { join } from 'node:path'

import test from 'ava'

import { Gpt2, NexttokenError } from '../index'
import { TINY_MODEL } from './helpers/fixtures'

// The NVIDIA kernel driver publishes its version here; CI machines have none.
const withoutDriver = existsSync('/proc/driver/nvidia/version') ? test.skip : test.serial
const onLinux = process.platform === 'linux' ? test : test.skip

/** Runs `body` with NEXTTOKEN_CUDA_ADDON set to `path` (or unset), then restores it. */
async function withCudaAddon<T>(path: string | undefined, body: () => Promise<T>): Promise<T> {
  const before = process.env.NEXTTOKEN_CUDA_ADDON
  if (path === undefined) delete process.env.NEXTTOKEN_CUDA_ADDON
  else process.env.NEXTTOKEN_CUDA_ADDON = path
  try {
    return await body()
  } finally {
    if (before === undefined) delete process.env.NEXTTOKEN_CUDA_ADDON
    else process.env.NEXTTOKEN_CUDA_ADDON = before
  }
}

withoutDriver("device 'cuda' without the CUDA package names the package and the driver's library", async (t) => {
  const err = await withCudaAddon(undefined, () =>
    t.throwsAsync(Gpt2.fromPretrained(TINY_MODEL, { device: 'cuda' }), { instanceOf: NexttokenError }),
  )
  t.is(err?.code, 'ERR_BACKEND_UNAVAILABLE')
  t.regex(
    err!.message,
    /the package nexttoken-linux-x64-gnu-cuda is not installed \(npm install nexttoken-linux-x64-gnu-cuda\)/,
  )
  t.regex(err!.message, /libcuda\.so\.1 \(the NVIDIA driver, 580 or newer\)/)
  t.regex(err!.message, /H100/)
})

withoutDriver("device 'cuda' with the CUDA build but no driver names libcuda.so.1, and loads nothing", async (t) => {
  // The libraries are probed before the addon is loaded, so any file stands in for the CUDA
  // build (npm/linux-x64-gnu-cuda/ holds one after scripts/cuda-build.sh): that its library is
  // never loaded is what keeps a missing driver from crashing the process.
  const build = join(__dirname, '..', 'nexttoken.linux-x64-gnu.node')
  const err = await withCudaAddon(build, () =>
    t.throwsAsync(Gpt2.fromPretrained(TINY_MODEL, { device: 'cuda' }), { instanceOf: NexttokenError }),
  )
  t.is(err?.code, 'ERR_BACKEND_UNAVAILABLE')
  t.regex(err!.message, /libcuda\.so\.1 \(the NVIDIA driver, 580 or newer\)/)
  t.regex(err!.message, /LD_LIBRARY_PATH/)
  t.notRegex(err!.message, /not installed/)
})

test.serial('NEXTTOKEN_CUDA_ADDON naming no file is reported as such', async (t) => {
  const missing = join(__dirname, 'no-such-cuda-build.node')
  const err = await withCudaAddon(missing, () =>
    t.throwsAsync(Gpt2.fromPretrained(TINY_MODEL, { device: 'cuda' }), { instanceOf: NexttokenError }),
  )
  t.is(err?.code, 'ERR_BACKEND_UNAVAILABLE')
  t.true(err!.message.includes(`NEXTTOKEN_CUDA_ADDON names ${missing}, which does not exist`), err!.message)
})

onLinux("device 'metal' off a Mac is ERR_BACKEND_UNAVAILABLE naming the build that has it", async (t) => {
  const err = await t.throwsAsync(Gpt2.fromPretrained(TINY_MODEL, { device: 'metal' }), { instanceOf: NexttokenError })
  t.is(err?.code, 'ERR_BACKEND_UNAVAILABLE')
  t.regex(err!.message, /device 'metal' is not available .*macOS arm64/)
})

withoutDriver("device 'auto' runs on the CPU where no GPU backend is available, and says so", async (t) => {
  const m = await Gpt2.fromPretrained(TINY_MODEL, { device: 'auto' })
  t.is(m.device, 'cpu')
  t.is((await m.nextToken('Hello')).id, 17707)
  t.is((await Gpt2.fromPretrained(TINY_MODEL)).device, 'cpu', 'the default')
})

test('a device name that is none of them is ERR_INVALID_ARG listing the names', async (t) => {
  for (const device of ['tpu', 'CUDA', 7, null]) {
    const err = await t.throwsAsync(Gpt2.fromPretrained(TINY_MODEL, { device: device as 'cpu' }), {
      instanceOf: NexttokenError,
    })
    t.is(err?.code, 'ERR_INVALID_ARG')
    t.regex(err!.message, /device must be 'cpu', 'cuda', 'metal' or 'auto'/)
  }
})
