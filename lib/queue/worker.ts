// The worker side: a BullMQ Worker whose jobs all run on one model, so that the jobs it holds at
// once are decoded together by the model's scheduler (continuous batching), as concurrent
// `generate` calls in one process are.
import { type Job, WaitingError, Worker, type WorkerOptions } from 'bullmq'
import { checkOptionsObject, invalidArg } from '../errors'
import { Gpt2 } from '../gpt2'
import { type GenerationLimits, toNativeLimits } from '../limits'
import type { LoadOptions } from '../load-options'
import { toJobFailure } from './failure'
import { fromJobData, type GenerationJobData } from './job'
import { type Json, toJson } from './json'
import { ProgressReporter } from './progress'

/** Options of `createGenerationWorker`: BullMQ's `WorkerOptions` (`connection`...) and these. */
export interface GenerationWorkerOptions extends Omit<WorkerOptions, 'concurrency'> {
  /** The BullMQ queue to take generation jobs from. */
  queueName: string
  /**
   * The model: a Hub repo id or a path, loaded with `loadOptions` and disposed by `close()`; or a
   * loaded `Gpt2`, which stays the caller's (not disposed).
   */
  model: string | Gpt2
  /** How to load `model` when it is a name or a path (`maxBatchSize`, `dtype`...). */
  loadOptions?: LoadOptions
  /**
   * Most jobs run at once. They share the model's forward passes up to its `maxBatchSize`;
   * jobs beyond it wait in the model's scheduler (holding no KV cache) rather than in Redis.
   * @default the model's maxBatchSize
   */
  concurrency?: number
  /**
   * What one job may ask for, checked when the job is taken, before its input is tokenized: a job
   * past a limit fails with `ERR_INVALID_ARG` naming it, and is not retried. The library's own
   * caps hold whatever is set here (64 beams, 128 continuations, a 16 GiB KV-cache estimate, an
   * input no longer than the context can hold).
   * @default the library's caps alone
   */
  limits?: GenerationLimits
}

/** The abort reason of a generation stopped so that its job goes back to the queue. */
const HAND_BACK = new Error('the worker is closing: the job goes back to the queue')

/**
 * A BullMQ `Worker` that runs generation jobs (added by `enqueueGenerations` or `generateMany`)
 * on one model. Everything BullMQ offers works as usual: its events, `pause()`, `cancelJob(id)`
 * (which aborts that job's generation; the job fails with `ABORT_ERR` and is not retried),
 * stalled-job recovery (a job whose worker died is run again by another worker).
 */
export class GenerationWorker extends Worker<GenerationJobData, Json> {
  /** The model every job runs on. */
  readonly model: Gpt2
  // True private fields (#): a name BullMQ's Worker uses inside, now or later, cannot clash.
  readonly #generations: Set<AbortController>
  readonly #ownsModel: boolean

  /** @internal Use `createGenerationWorker`. */
  constructor(model: Gpt2, ownsModel: boolean, options: GenerationWorkerOptions) {
    const { queueName, model: _model, loadOptions: _loadOptions, concurrency, limits, ...workerOptions } = options
    const running = new Set<AbortController>()
    // Three parameters: BullMQ passes the cancellation signal only to a processor that declares it.
    super(queueName, (job, token, signal) => runJob(model, limits, running, job, token, signal), {
      ...workerOptions,
      concurrency: concurrency ?? model.maxBatchSize,
    })
    this.model = model
    this.#generations = running
    this.#ownsModel = ownsModel
  }

  /**
   * Stops taking jobs, then either lets the running ones finish (`force` false, BullMQ's
   * default) or hands them back (`force` true): their generations are aborted and the jobs
   * return to the waiting list at once, for another worker to run from the start (rather than
   * waiting to be found stalled). Then disposes the model if the worker loaded it. A beam search
   * cannot be stopped midway: it finishes either way.
   */
  override async close(force = false): Promise<void> {
    // Closing first: a job handed back must not be followed by this worker fetching another.
    const closing = super.close(false)
    if (force) for (const generation of this.#generations) generation.abort(HAND_BACK)
    await closing
    if (this.#ownsModel) await this.model.dispose()
  }
}

/** Runs one job: its result is the `GenerateResult` (or the list of them) as JSON. */
async function runJob(
  model: Gpt2,
  limits: GenerationLimits | undefined,
  running: Set<AbortController>,
  job: Job<GenerationJobData, Json>,
  token: string | undefined,
  signal: AbortSignal | undefined,
): Promise<Json> {
  // The library's own controller: it can also be aborted to hand the job back, and keeps the
  // generation independent of where BullMQ's signal comes from.
  const generation = new AbortController()
  const cancel = () => generation.abort(signal?.reason)
  if (signal?.aborted) cancel()
  signal?.addEventListener('abort', cancel, { once: true })
  running.add(generation)
  const progress = new ProgressReporter(job)
  try {
    const { input, options } = fromJobData(job.data)
    // Progress per token where the call has one sequence (beam search and several
    // continuations have no single token stream to report).
    const result = await model.generateWithin(input, { ...options, signal: generation.signal }, limits, (step) =>
      progress.add(step),
    )
    await progress.end()
    return toJson(result)
  } catch (err) {
    await progress.end()
    if (generation.signal.reason === HAND_BACK && token !== undefined) {
      await job.moveToWait(token)
      throw new WaitingError() // BullMQ's "moved elsewhere by the processor": neither failed nor retried
    }
    throw toJobFailure(err)
  } finally {
    running.delete(generation)
    signal?.removeEventListener('abort', cancel)
  }
}

/**
 * Starts a worker that takes generation jobs from `queueName` and runs them on one model, which
 * it loads first (a model that fails to load rejects with its coded error, and no worker
 * starts). Attach an `'error'` listener, as for any BullMQ worker: connection errors (Redis
 * restarting) are emitted there while it reconnects.
 */
export async function createGenerationWorker(options: GenerationWorkerOptions): Promise<GenerationWorker> {
  checkOptionsObject(options)
  const { queueName, model, loadOptions, concurrency, limits } = options
  if (typeof queueName !== 'string' || queueName === '') throw invalidArg('queueName must be a non-empty string')
  if (concurrency !== undefined && !(Number.isInteger(concurrency) && concurrency >= 1))
    throw invalidArg(`concurrency must be an integer >= 1; got ${String(concurrency)}`)
  toNativeLimits(limits) // its types, before a model is loaded
  if (model instanceof Gpt2) {
    if (loadOptions !== undefined) throw invalidArg('loadOptions are for a model given by name or path')
    return new GenerationWorker(model, false, options)
  }
  if (typeof model !== 'string') throw invalidArg('model must be a model name or path, or a loaded Gpt2')
  const loaded = await Gpt2.fromPretrained(model, loadOptions)
  try {
    return new GenerationWorker(loaded, true, options)
  } catch (err) {
    await loaded.dispose()
    throw err
  }
}
