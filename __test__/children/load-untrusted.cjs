// Loads the model directory argv[2] (as a model, or only its tokenizer when argv[3] is
// 'tokenizer') and, if it loads, generates a few tokens from argv[4], or encodes and decodes it.
// Prints one line of JSON: `{ code, message }` when a coded error stopped it, `{ ids }` when it
// ran. catalogue/untrusted-files.spec.ts runs it under an address-space limit: a file that takes
// the process down shows as the child's signal or exit code instead.
const { Gpt2, Tokenizer } = require('../../index')

async function main() {
  const [dir, kind, prompt] = process.argv.slice(2)
  try {
    if (kind === 'tokenizer') {
      const tokenizer = await Tokenizer.fromPretrained(dir)
      const ids = tokenizer.encode(prompt)
      tokenizer.decode(ids)
      return print({ ids: Array.from(ids) })
    }
    const model = await Gpt2.fromPretrained(dir)
    const result = await model.generate(prompt, { maxNewTokens: 2 })
    await model.dispose()
    print({ ids: Array.from(result.newIds) })
  } catch (err) {
    if (typeof err?.code !== 'string') throw err
    print({ code: err.code, message: err.message })
  }
}

function print(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
