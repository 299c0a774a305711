// process.exit(0) while 20 streams and 10 generate calls run: node exit-while-streaming.cjs <model dir>
// Prints the time (performance.timeOrigin + now) just before exiting; the parent measures from it.
const { join } = require('node:path')
const { Gpt2 } = require(join(__dirname, '..', '..', 'index.js'))

;(async () => {
  const model = await Gpt2.fromPretrained(process.argv[2], { maxBatchSize: 16 })
  const options = { maxNewTokens: 1000, eosTokenId: null }
  let steps = 0
  for (let i = 0; i < 20; i++) {
    ;(async () => {
      for await (const step of model.stream(`Stream ${i}`, options)) steps += step.id >= 0 ? 1 : 0
    })()
  }
  for (let i = 0; i < 10; i++) model.generate(`Generate ${i}`, options).catch(() => {})
  while (steps < 200) await new Promise((resolve) => setTimeout(resolve, 5))
  console.log(JSON.stringify({ steps, exitingAt: performance.timeOrigin + performance.now() }))
  process.exit(0)
})()
