// Lifecycle races run by races.spec.ts, each in a child process of its own so that a crash shows as
// the child's exit signal: node [--expose-gc] races.cjs <scenario> <model dir>
// Prints one JSON line with what the parent checks.
const { Worker } = require('node:worker_threads')
const { readdirSync, readFileSync } = require('node:fs')
const { join } = require('node:path')

const LIBRARY = join(__dirname, '..', '..', 'index.js')
const [scenario, modelDir] = process.argv.slice(2)
const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Threads of this process named after a model's scheduler (Linux; null elsewhere). */
function schedulerThreads() {
  if (process.platform !== 'linux') return null
  return readdirSync('/proc/self/task').filter((task) => {
    try {
      return readFileSync(`/proc/self/task/${task}/comm`, 'utf8').startsWith('nexttoken-sched')
    } catch {
      return false // the thread ended while we looked
    }
  }).length
}

/** Collects until `done()` holds or `tries` rounds have passed (finalizers run between rounds). */
async function collectUntil(done, tries = 50) {
  for (let i = 0; i < tries && !done(); i++) {
    global.gc()
    await delay(20)
  }
}

// The worker's side of the worker scenarios: load, then (maybe) work, reporting each stage.
const WORKER = `
const { workerData, parentPort } = require('node:worker_threads')
const { Gpt2 } = require(workerData.library)
;(async () => {
  parentPort.postMessage({ stage: 'loading' })
  const model = await Gpt2.fromPretrained(workerData.modelDir)
  parentPort.postMessage({ stage: 'loaded' })
  if (workerData.task === 'session') {
    // Session calls and a dispose of the model in flight when the worker is terminated.
    const session = await model.session('Hello')
    for (let i = 0; ; i++) {
      session.append(' again').catch(() => {})
      if (i === 3) model.dispose()
      await session.topK(2).catch(() => {})
      parentPort.postMessage({ stage: 'step' })
    }
  }
  const result = await model.generate('Hello', { maxNewTokens: 8, eosTokenId: null })
  parentPort.postMessage({ stage: 'done', newIds: Array.from(result.newIds) })
})()
`

/** A worker running WORKER; `stages` resolves each stage's first message. */
function spawn(task) {
  const worker = new Worker(WORKER, { eval: true, workerData: { library: LIBRARY, modelDir, task } })
  const seen = new Map()
  const waiters = new Map()
  worker.on('message', (message) => {
    if (!seen.has(message.stage)) seen.set(message.stage, message)
    waiters.get(message.stage)?.(message)
  })
  const exited = new Promise((resolve) => worker.once('exit', resolve))
  const stage = (name) =>
    seen.has(name) ? Promise.resolve(seen.get(name)) : new Promise((resolve) => waiters.set(name, resolve))
  return { worker, exited, stage }
}

const scenarios = {
  // Models left to the garbage collector, never disposed: each one's scheduler thread ends and
  // its memory is reused, so neither grows with the number of models loaded.
  async gc() {
    const { Gpt2 } = require(LIBRARY)
    const before = schedulerThreads()
    const rss = []
    let collected = 0
    const registry = new FinalizationRegistry(() => collected++)
    const rounds = 30
    // In a function of its own, so that no variable of this one still holds the last model.
    const loadUseAndDrop = async (i) => {
      const model = await Gpt2.fromPretrained(modelDir)
      await model.generate('Hello', { maxNewTokens: 4 })
      registry.register(model, i)
    }
    for (let i = 0; i < rounds; i++) {
      await loadUseAndDrop(i)
      if (i % 5 === 4) {
        await collectUntil(() => collected === i + 1)
        rss.push(process.memoryUsage().rss)
      }
    }
    await collectUntil(() => collected === rounds && schedulerThreads() === before)
    return { rounds, collected, threadsBefore: before, threadsAfter: schedulerThreads(), rss }
  },
  // A worker terminated at every stage of a load (a load's thread still reading the files, its
  // result not yet delivered), then one that loads and generates to the end.
  async 'terminate-while-loading'() {
    const terminated = []
    for (const afterMs of [0, 1, 5, 20, 50, 100]) {
      const { worker, exited, stage } = spawn('generate')
      await stage('loading')
      await delay(afterMs)
      const started = performance.now()
      await worker.terminate()
      await exited
      terminated.push(performance.now() - started)
    }
    const { stage } = spawn('generate')
    const { newIds } = await stage('done')
    return { terminated, newIds }
  },
  // A worker terminated with session calls and a model dispose in flight.
  async 'terminate-with-session-calls'() {
    const { worker, exited, stage } = spawn('session')
    await stage('step')
    await delay(5)
    await worker.terminate()
    await exited
    const next = spawn('generate')
    const { newIds } = await next.stage('done')
    return { newIds }
  },
  // process.exit() while four loads are in flight.
  async 'exit-while-loading'() {
    const { Gpt2 } = require(LIBRARY)
    // Restarted as they end: the work never runs out, so an exit that waited for it would hang.
    for (let i = 0; i < 4; i++)
      (async () => {
        for (;;) await Gpt2.fromPretrained(modelDir)
      })().catch(() => {})
    await delay(10)
    console.log(JSON.stringify({ exitingAt: performance.timeOrigin + performance.now() }))
    process.exit(0)
  },
  // process.exit() while two long beam searches run (seconds each).
  async 'exit-while-searching'() {
    const { Gpt2 } = require(LIBRARY)
    const model = await Gpt2.fromPretrained(modelDir)
    for (let i = 0; i < 2; i++)
      (async () => {
        for (;;) await model.generate('Hello', { numBeams: 4, maxNewTokens: 900, eosTokenId: null })
      })().catch(() => {})
    await delay(100)
    console.log(JSON.stringify({ exitingAt: performance.timeOrigin + performance.now() }))
    process.exit(0)
  },
}

scenarios[scenario]().then((result) => console.log(JSON.stringify(result)))
