// Makes target/hub-python: a Python virtual environment with huggingface_hub, the real client the
// Hub tests check our cache against (its version pinned in scripts/hub-requirements.txt; small:
// no torch). Does nothing when it is already there. Prints the interpreter's path.
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const venv = join(root, 'target', 'hub-python')
const python = join(venv, process.platform === 'win32' ? 'Scripts/python.exe' : 'bin/python')
const requirements = join(root, 'scripts', 'hub-requirements.txt')
const pinned = /huggingface_hub==([\w.]+)/.exec(readFileSync(requirements, 'utf8'))[1]

function installedVersion() {
  if (!existsSync(python)) return undefined
  try {
    return execFileSync(python, ['-c', 'import huggingface_hub; print(huggingface_hub.__version__)'], {
      encoding: 'utf8',
    }).trim()
  } catch {
    return undefined
  }
}

if (installedVersion() !== pinned) {
  const system = process.env.PYTHON ?? 'python3'
  execFileSync(system, ['-m', 'venv', venv], { stdio: 'inherit' })
  execFileSync(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '-r', requirements], {
    stdio: 'inherit',
  })
}
console.log(python)
