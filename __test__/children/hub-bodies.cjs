// Loads each repo id given from the stand-in Hub at `endpoint`, one after the other, then waits a
// little for what the server does after answering (close the connection, with bodies unread) to
// reach this process, and prints each load's outcome as JSON. The parent checks that this process
// lived to print it and exited by itself. A repo id under `slow/` is read slowly: its progress
// callback blocks the thread 20 ms each time, so that bytes and the server's FIN pile up behind
// a reader that is behind.
const { join } = require('node:path')
const { Gpt2 } = require('../../index')

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function main() {
  const [endpoint, cacheRoot, ...repos] = process.argv.slice(2)
  const results = []
  for (const repo of repos) {
    const cacheDir = join(cacheRoot, repo.replace('/', '_'))
    const onProgress = repo.startsWith('slow/')
      ? () => {
          const until = Date.now() + 20
          while (Date.now() < until) {}
        }
      : undefined
    try {
      const model = await Gpt2.fromPretrained(repo, { endpoint, cacheDir, onProgress })
      await model.dispose()
      results.push({ repo, ok: true })
    } catch (err) {
      results.push({ repo, ok: false, code: err.code, message: String(err.message) })
    }
    await sleep(50)
  }
  await sleep(300)
  process.stdout.write(JSON.stringify(results))
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
