// One generation worker process for bench/queue/run.mjs: node worker.cjs '<json config>' (the
// options of createGenerationWorker). Prints "ready" once it takes jobs; SIGTERM closes it.
const { join } = require('node:path')
const { createGenerationWorker } = require(join(__dirname, '..', '..', 'lib', 'queue', 'index.js'))

;(async () => {
  const worker = await createGenerationWorker(JSON.parse(process.argv[2]))
  worker.on('error', (err) => process.stderr.write(`worker error: ${err.message}\n`))
  process.once('SIGTERM', () => worker.close().then(() => process.exit(0)))
  await worker.waitUntilReady()
  process.stdout.write('ready\n')
})().catch((err) => {
  process.stderr.write(`${err.stack}\n`)
  process.exit(1)
})
