// The server under measurement, in a process of its own (forked by load.mjs and run.mjs) so that
// its event loop and RSS are its own: loads `model` with the load options given as JSON, serves it
// on a free loopback port, and answers 'stats' messages with its event-loop delay (since the last
// 'stats') and RSS.
//
//   fork('bench/serve/server.mjs', [modelDir, '{"maxBatchSize":64}'])
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { Gpt2, serve } = require('../../index.js')

const [dir, options = '{}'] = process.argv.slice(2)
const model = await Gpt2.fromPretrained(dir, JSON.parse(options))
const server = await serve(model, { port: 0 })
const delay = monitorEventLoopDelay({ resolution: 1 })
delay.enable()
process.on('message', async (message) => {
  if (message === 'stats') {
    const ms = (ns) => ns / 1e6
    process.send({ p99: ms(delay.percentile(99)), max: ms(delay.max), rssMiB: process.memoryUsage().rss / 2 ** 20 })
    delay.reset()
  } else if (message === 'stop') {
    await server.close()
    await model.dispose()
    process.disconnect()
  }
})
process.send({ url: server.url })
