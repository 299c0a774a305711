// One cache for Node and Python: Python's own huggingface_hub (installed by scripts/hub-python.mjs,
// which `npm test` runs first) against the same stand-in Hub. A cache it writes loads in Node
// offline, and a cache Node writes is found by its lookups and passes its cache scan.
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

import test from 'ava'

import { Gpt2 } from '../index'
import { TINY_MODEL } from './helpers/fixtures'
import { hubRepos, TINY } from './helpers/hub-repos'
import { HubServer } from './helpers/hub-server'

const PYTHON = join(
  __dirname,
  '..',
  'target',
  'hub-python',
  process.platform === 'win32' ? 'Scripts/python.exe' : 'bin/python',
)
const repos = hubRepos()
const hub = new HubServer(repos).start()
test.after.always(async () => (await hub).stop())

/** The files transformers fetches for the fixture repo, all of which it has. */
const FILES = ['config.json', 'model.safetensors', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']
const PROMPT = 'The meaning of life is'
const freshCache = () => mkdtempSync(join(tmpdir(), 'nexttoken-pyhub-'))
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex')

async function python(script: string, args: string[]): Promise<unknown> {
  if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: run node scripts/hub-python.mjs (npm test does)`)
  const env = { ...process.env, HF_HUB_DISABLE_TELEMETRY: '1', HF_HUB_DISABLE_UPDATE_CHECK: '1' }
  const { stdout } = await promisify(execFile)(PYTHON, ['-c', script, ...args], { env })
  return JSON.parse(stdout)
}

test.serial('a cache written by Python hf_hub_download loads in Node offline, with no request', async (t) => {
  const server = await hub
  const cacheDir = freshCache()
  const download = `
import json, sys
from huggingface_hub import hf_hub_download
endpoint, cache, repo, *files = sys.argv[1:]
print(json.dumps([hf_hub_download(repo, f, cache_dir=cache, endpoint=endpoint) for f in files]))
`
  const paths = (await python(download, [server.hubUrl, cacheDir, TINY, ...FILES])) as string[]
  t.is(paths.length, FILES.length)
  const from = server.requests.length
  const model = await Gpt2.fromPretrained(TINY, { cacheDir, offline: true })
  const reference = await Gpt2.fromPretrained(TINY_MODEL)
  t.deepEqual((await model.generate(PROMPT)).newIds, (await reference.generate(PROMPT)).newIds)
  t.deepEqual(server.since(from), [])
  await Promise.all([model.dispose(), reference.dispose()])
})

test.serial(
  'a cache written by Node is found by Python: lookups, offline downloads, .no_exist, cache scan',
  async (t) => {
    const server = await hub
    const cacheDir = freshCache()
    for (const repo of [TINY, 'nexttoken-test/pytorch']) {
      await (await Gpt2.fromPretrained(repo, { cacheDir, endpoint: server.hubUrl })).dispose()
    }
    const inspect = `
import hashlib, json, sys
from huggingface_hub import hf_hub_download, scan_cache_dir, try_to_load_from_cache
from huggingface_hub.file_download import _CACHED_NO_EXIST
cache, repo, *files = sys.argv[1:]
def describe(found):
    if found is _CACHED_NO_EXIST: return "no-exist"
    if found is None: return None
    return hashlib.sha256(open(found, "rb").read()).hexdigest()
lookups = {f: describe(try_to_load_from_cache(repo, f, cache_dir=cache)) for f in files}
offline = {f: describe(hf_hub_download(repo, f, cache_dir=cache, local_files_only=True)) for f in files}
gone = describe(try_to_load_from_cache("nexttoken-test/pytorch", "generation_config.json", cache_dir=cache))
scan = scan_cache_dir(cache)
print(json.dumps({"lookups": lookups, "offline": offline, "pytorchGenerationConfig": gone,
                  "warnings": [str(w) for w in scan.warnings],
                  "repos": sorted(r.repo_id for r in scan.repos),
                  "files": sorted(f.file_name for r in scan.repos if r.repo_id == repo for rev in r.revisions for f in rev.files)}))
`
    const found = (await python(inspect, [cacheDir, TINY, ...FILES])) as {
      lookups: Record<string, string | null>
      offline: Record<string, string | null>
      pytorchGenerationConfig: string | null
      warnings: string[]
      repos: string[]
      files: string[]
    }
    const expected = Object.fromEntries(FILES.map((f) => [f, sha256(readFileSync(join(TINY_MODEL, f)))]))
    t.deepEqual(found.lookups, expected, 'try_to_load_from_cache finds every file, with its contents')
    t.deepEqual(found.offline, expected, 'hf_hub_download(local_files_only=True) too')
    t.is(found.pytorchGenerationConfig, 'no-exist', 'a file the repo lacks is known as missing, as Python records it')
    t.deepEqual(found.warnings, [], 'scan_cache_dir finds nothing corrupted')
    t.deepEqual(found.repos, ['nexttoken-test/pytorch', TINY])
    t.deepEqual(found.files, [...FILES].sort())
  },
)
