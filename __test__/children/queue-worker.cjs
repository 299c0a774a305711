// A generation worker in a process of its own, for the queue tests that kill workers or restart
// Redis: node queue-worker.cjs '<json config>'. The config holds `queueName`, `model`,
// `loadOptions` and BullMQ's worker options (`connection`, `lockDuration`...). Prints one JSON line
// per event the parent waits for: ready, active, progress, completed, failed. SIGTERM closes the
// worker handing its running jobs back (close(true)), then exits.
const { join } = require('node:path')

const { createGenerationWorker } = require(join(__dirname, '..', '..', 'lib', 'queue', 'index.js'))

const say = (event) => process.stdout.write(`${JSON.stringify(event)}\n`)

;(async () => {
  const worker = await createGenerationWorker(JSON.parse(process.argv[2]))
  // Connection errors while Redis restarts are expected; BullMQ reconnects on its own.
  worker.on('error', (err) => process.stderr.write(`worker error: ${err.message}\n`))
  worker.on('active', (job) => say({ event: 'active', jobId: job.id }))
  worker.on('progress', (job) => say({ event: 'progress', jobId: job.id }))
  worker.on('completed', (job) => say({ event: 'completed', jobId: job.id }))
  worker.on('failed', (job, err) => say({ event: 'failed', jobId: job?.id, reason: err.message }))
  process.once('SIGTERM', async () => {
    await worker.close(true)
    say({ event: 'closed' })
    process.exit(0)
  })
  await worker.waitUntilReady()
  say({ event: 'ready', concurrency: worker.opts.concurrency })
})().catch((err) => {
  process.stderr.write(`${err.code ?? ''} ${err.stack}\n`)
  process.exit(1)
})
