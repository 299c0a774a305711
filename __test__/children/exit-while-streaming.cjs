// Ending a process while generations run: node exit-while-streaming.cjs <exit|end> <model dir>
//   exit: process.exit(0) while 20 streams and 10 generate calls run, each restarted whenever
//         it ends: the work never runs out, so an exit that waited for it would hang (the
//         parent's timeout);
//   end:  16 streams (every batch slot) are pulled a few times and then left unread (no
//         return()), so nothing is pending and the event loop ends by itself while their
//         generations still hold their slots.
// Prints the time (performance.timeOrigin + now) just before exiting; the parent measures from it.
const { join } = require('node:path')
const { Gpt2 } = require(join(__dirname, '..', '..', 'index.js'))

const [mode, modelDir] = process.argv.slice(2)
const options = { maxNewTokens: 1000, eosTokenId: null }
const say = (steps) => console.log(JSON.stringify({ steps, exitingAt: performance.timeOrigin + performance.now() }))

async function exitWhileRunning(model) {
  let steps = 0
  for (let i = 0; i < 20; i++) {
    ;(async () => {
      for (;;) for await (const step of model.stream(`Stream ${i}`, options)) steps += step.id >= 0 ? 1 : 0
    })()
  }
  for (let i = 0; i < 10; i++)
    (async () => {
      for (;;) await model.generate(`Generate ${i}`, options)
    })().catch(() => {})
  while (steps < 200) await new Promise((resolve) => setTimeout(resolve, 5))
  say(steps)
  process.exit(0)
}

async function endWithStreamsLeftUnread(model) {
  const iterators = Array.from({ length: 16 }, (_, i) => model.stream(`Stream ${i}`, options))
  let steps = 0
  for (const iterator of iterators) for (let k = 0; k < 5; k++) steps += (await iterator.next()).done ? 0 : 1
  say(steps) // and return: nothing else is pending
}

;(async () => {
  const model = await Gpt2.fromPretrained(modelDir, { maxBatchSize: 16 })
  await (mode === 'exit' ? exitWhileRunning(model) : endWithStreamsLeftUnread(model))
})()
