// Worker-thread scenarios, each run by lifecycle.spec.ts in a child process of its own so that a
// crash shows as the child's exit signal: node workers.cjs <scenario> <model dir>
// Prints one JSON line with what the parent checks.
const { Worker } = require('node:worker_threads')
const { join } = require('node:path')

const LIBRARY = join(__dirname, '..', '..', 'index.js')
const [scenario, modelDir] = process.argv.slice(2)

// The worker's side: load the model, then generate, or start generations and report.
const WORKER = `
const { workerData, parentPort } = require('node:worker_threads')
const { Gpt2 } = require(workerData.library)
;(async () => {
  const model = await Gpt2.fromPretrained(workerData.modelDir, { maxBatchSize: workerData.maxBatchSize })
  const options = { maxNewTokens: 1000, eosTokenId: null }
  if (workerData.task === 'generate') {
    const result = await model.generate(workerData.prompt, { maxNewTokens: 12, eosTokenId: null })
    parentPort.postMessage({ newIds: Array.from(result.newIds) })
  } else if (workerData.task === 'mid-generation') {
    // Restarted as it ends: terminate() must not wait for work that never runs out.
    for (;;) for await (const step of model.stream(workerData.prompt, options)) parentPort.postMessage({ step: step.id })
  } else if (workerData.task === 'waiting-for-slot') {
    // maxBatchSize 1: the second generation waits for the slot the first one holds.
    ;(async () => {
      for (;;) await model.generate(workerData.prompt, options)
    })().catch(() => {})
    model.generate('Waiting for the slot', options).catch(() => {})
    setTimeout(() => parentPort.postMessage({ started: true }), 50)
  }
})()
`

function spawn(task, prompt, maxBatchSize = 16) {
  const worker = new Worker(WORKER, {
    eval: true,
    workerData: { library: LIBRARY, modelDir, task, prompt, maxBatchSize },
  })
  const exited = new Promise((resolve) => worker.once('exit', resolve))
  const firstMessage = new Promise((resolve, reject) => {
    worker.once('message', resolve)
    worker.once('error', reject)
  })
  return { worker, exited, firstMessage }
}

/** Terminates a worker once it has said something; resolves with how long terminate() took. */
async function terminateAfterFirstMessage(task, prompt, maxBatchSize) {
  const { worker, exited, firstMessage } = spawn(task, prompt, maxBatchSize)
  await firstMessage
  const started = performance.now()
  await worker.terminate()
  await exited
  return performance.now() - started
}

async function generateInWorker(prompt) {
  const { exited, firstMessage } = spawn('generate', prompt)
  const { newIds } = await firstMessage
  await exited
  return newIds
}

const scenarios = {
  // The addon is loaded only in workers: one after another, then after a termination
  // mid-generation, then after a termination while waiting for a slot.
  async 'workers-only'() {
    const first = await generateInWorker('Hello')
    const second = await generateInWorker('Hello')
    const terminateMidGenerationMs = await terminateAfterFirstMessage('mid-generation', 'Hello')
    const afterTermination = await generateInWorker('Hello')
    const terminateWaitingMs = await terminateAfterFirstMessage('waiting-for-slot', 'Hello', 1)
    const last = await generateInWorker('Hello')
    return { runs: [first, second, afterTermination, last], terminateMidGenerationMs, terminateWaitingMs }
  },
  // Two workers load and generate at the same time, then the main thread does the same.
  async 'two-at-once'() {
    const inWorkers = await Promise.all([generateInWorker('Hello'), generateInWorker('Hello')])
    const { Gpt2 } = require(LIBRARY)
    const model = await Gpt2.fromPretrained(modelDir)
    const onMain = Array.from((await model.generate('Hello', { maxNewTokens: 12, eosTokenId: null })).newIds)
    return { runs: [...inWorkers, onMain] }
  },
}

scenarios[scenario]().then((result) => console.log(JSON.stringify(result)))
