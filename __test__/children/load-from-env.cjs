// Loads a repo id with no options, so that only the environment (HF_HUB_CACHE, HF_ENDPOINT,
// HF_HUB_OFFLINE...) says where it is, and prints the ids of a short greedy generation.
const { Gpt2 } = require('../../index')

async function main() {
  const [repoId, prompt] = process.argv.slice(2)
  const model = await Gpt2.fromPretrained(repoId)
  const result = await model.generate(prompt, { maxNewTokens: 5 })
  process.stdout.write(JSON.stringify(result.newIds))
  await model.dispose()
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
