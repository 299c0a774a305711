// The notebook's step 2 in Node: the five most likely next tokens after a sentence.
//
//   npm run demo                       # the committed tiny model (random weights)
//   npm run demo -- <repo id or model dir> "text"   # gpt2, distilgpt2, ... or a directory in the Hub layout
import { join } from 'node:path'

import { Gpt2 } from 'nexttoken'

const TINY_MODEL = join(__dirname, '..', '__test__', 'fixtures', 'tiny-gpt2')

async function main() {
  const [modelDir = TINY_MODEL, text = "I am learning about generative ai and LLM's"] = process.argv.slice(2)
  await using model = await Gpt2.fromPretrained(modelDir)

  const ids = model.tokenizer.encode(text)
  console.log(`Input: ${JSON.stringify(text)}`)
  console.log(`Token ids: [${ids.join(', ')}]`)
  if (modelDir === TINY_MODEL) {
    console.log('Model: the tiny test fixture (2 layers, 32 wide) with RANDOM weights: the tokens are')
    console.log('nonsense, but the numbers are the ones Python transformers computes for it.')
  }
  console.log('\nThe five most likely next tokens:\n')
  console.log(`${'id'.padStart(6)}  ${'token'.padEnd(18)}  p`)
  for (const { id, token, p } of await model.topK(ids, 5)) {
    console.log(`${String(id).padStart(6)}  ${JSON.stringify(token).padEnd(18)}  ${p.toFixed(4)}`)
  }
  const next = await model.nextToken(ids)
  console.log(`\nGreedy next token: ${next.id} ${JSON.stringify(next.token)} (p = ${next.p.toFixed(4)})`)
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
