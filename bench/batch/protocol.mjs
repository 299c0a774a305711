// The batch protocol shared by the Node engines (pytorch.py repeats it in Python).
//
// For each batch size B: B different prompts of PROMPT_TOKENS ids run at once, each generating
// NEW_TOKENS greedy tokens with eos ignored; one warm-up and REPS repetitions. Per repetition:
// wall time of the whole batch, and every token's arrival time per request.
// An engine is `runBatch(prompts, n) -> { wallMs, stamps: number[][] }` (stamps per request, ms
// since the batch started, one per new token).
import { readFileSync, writeFileSync } from 'node:fs'

export const SIZES = [1, 2, 4, 8, 16]
export const PROMPT_TOKENS = 32
export const NEW_TOKENS = 64
export const REPS = 3

export function readArgs() {
  const [configPath, outPath] = process.argv.slice(2)
  return { config: JSON.parse(readFileSync(configPath, 'utf8')), outPath }
}

/** B distinct prompts: windows of the shared prompt ids, 16 ids apart. */
export function prompts(config, b) {
  return Array.from({ length: b }, (_, i) => config.promptIds.slice(i * 16, i * 16 + PROMPT_TOKENS))
}

export async function runProtocol(name, runBatch, info = {}) {
  const { config, outPath } = readArgs()
  const out = { engine: name, info, sizes: {} }
  for (const b of SIZES) {
    const batch = prompts(config, b)
    await runBatch(batch, NEW_TOKENS) // warm-up
    const reps = []
    for (let r = 0; r < REPS; r++) reps.push(await runBatch(batch, NEW_TOKENS))
    out.sizes[b] = reps
    const med = [...reps.map((x) => x.wallMs)].sort((x, y) => x - y)[Math.floor(REPS / 2)]
    console.error(`  [${name}] B=${b}: ${(((b * NEW_TOKENS) / med) * 1000).toFixed(1)} tok/s aggregate`)
  }
  writeFileSync(outPath, JSON.stringify(out))
}
