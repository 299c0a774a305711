// The producer side: generations added to a queue in bulk, each checked before any is added, and
// their results awaited in input order.
import { type BulkJobOptions, type Job, type Queue, QueueEvents } from 'bullmq'
import { invalidArg } from '../errors'
import type { GenerateResult } from '../generate-options'
import type { ModelInput } from '../tokenizer'
import { fromFailedReason } from './failure'
import { batchIdOf, type GenerationJobData, JOB_NAME, jobIdOf, type QueuedGenerateOptions, toJobData } from './job'
import { fromJson, type Json } from './json'
import { Outcomes } from './outcomes'
import type { GenerationProgress } from './progress'

/** How `enqueueGenerations` and `generateMany` add their jobs. */
export interface EnqueueOptions {
  /**
   * Names the batch: job ids are a hash of it, of each input's position and of the input and
   * options, so adding the same batch again adds nothing and finds the jobs (and results) of the
   * first time, as long as Redis keeps them. Give another id to run the same inputs again (new
   * samples, say).
   * @default a hash of the inputs and options
   */
  batchId?: string
  /** BullMQ options for every job (`attempts`, `backoff`, `priority`, `removeOnComplete`...); not `jobId`. */
  jobOptions?: Omit<BulkJobOptions, 'jobId'>
}

/** Options of `generateMany`. */
export interface GenerateManyOptions extends EnqueueOptions {
  /**
   * Where job events are read from. One per call is made (and closed) when left out; a caller
   * awaiting many batches may share one, started (and ready) before the call.
   */
  queueEvents?: QueueEvents
  /** Called when a job of the batch reports progress or finishes. */
  onProgress?: (progress: BatchProgress) => void
}

/** The progress of a `generateMany` batch. */
export interface BatchProgress {
  /** Jobs in the batch. */
  total: number
  /** Jobs completed or failed. */
  finished: number
  /** New tokens generated so far, over the whole batch (as the jobs last reported them). */
  generatedTokens: number
  /** The input whose job this call is about. */
  index: number
}

/** How far back a `generateMany`'s own QueueEvents starts reading (see there). */
const EVENTS_REPLAY_MS = 60_000

/** The jobs of a batch, every input checked before any job is added. */
function prepare(queue: Queue, inputs: ModelInput[], options: QueuedGenerateOptions, enqueue: EnqueueOptions) {
  if (!queue || typeof queue.addBulk !== 'function') throw invalidArg('queue must be a BullMQ Queue')
  if (!Array.isArray(inputs)) throw invalidArg('inputs must be an array')
  const { batchId, jobOptions } = enqueue ?? {}
  if (batchId !== undefined && typeof batchId !== 'string') throw invalidArg('batchId must be a string')
  const data = Array.from(inputs, (input, i) => {
    if (input === undefined) throw invalidArg(`input ${i} is missing`)
    return toJobData(input, options)
  })
  const batch = batchId ?? batchIdOf(data)
  return data.map((job, i) => ({
    name: JOB_NAME,
    data: job,
    opts: { ...jobOptions, jobId: jobIdOf(batch, i, job) },
  }))
}

/**
 * Adds one generation job per input to `queue` (a BullMQ `Queue`), after checking every input
 * and the options as `generate` would (a bad one throws its coded error and adds nothing). The
 * jobs' results are the `GenerateResult`s, as JSON (see `generateMany` to await them).
 */
export async function enqueueGenerations(
  queue: Queue,
  inputs: ModelInput[],
  options: QueuedGenerateOptions = {},
  enqueue: EnqueueOptions = {},
): Promise<Job<GenerationJobData, Json>[]> {
  return queue.addBulk(prepare(queue, inputs, options, enqueue))
}

/** New tokens in a job's result. */
const tokensOf = (result: GenerateResult | GenerateResult[]) =>
  Array.isArray(result) ? result.reduce((sum, r) => sum + r.newIds.length, 0) : result.newIds.length

/**
 * `generateBatch` on a queue: adds the jobs (as `enqueueGenerations`), then resolves with their
 * results in input order as the workers finish them. The first job to fail rejects the call with
 * its coded error (`ERR_INVALID_ARG`, `ERR_TOKEN_OUT_OF_RANGE`, `ABORT_ERR` for a cancelled
 * job...); the other jobs go on in the queue (calling again with the same batch finds them).
 */
export async function generateMany(
  queue: Queue,
  inputs: ModelInput[],
  options?: QueuedGenerateOptions & { numReturnSequences?: undefined },
  many?: GenerateManyOptions,
): Promise<GenerateResult[]>
export async function generateMany(
  queue: Queue,
  inputs: ModelInput[],
  options: QueuedGenerateOptions & { numReturnSequences: number },
  many?: GenerateManyOptions,
): Promise<GenerateResult[][]>
export async function generateMany(
  queue: Queue,
  inputs: ModelInput[],
  options: QueuedGenerateOptions = {},
  many: GenerateManyOptions = {},
): Promise<Array<GenerateResult | GenerateResult[]>> {
  const jobs = prepare(queue, inputs, options, many)
  const { onProgress } = many
  const events =
    many.queueEvents ??
    new QueueEvents(queue.name, {
      connection: queue.opts.connection,
      prefix: queue.opts.prefix,
      // From a stream id a little in the past rather than '$' (only events after its first
      // read): a job that ends between connecting and that read would otherwise go unheard and
      // never be awaited. Earlier events of other jobs are ignored; the margin covers a clock
      // difference between this machine and Redis's.
      lastEventId: `${Date.now() - EVENTS_REPLAY_MS}-0`,
    })
  const positions = new Map(jobs.map((job, i) => [job.opts.jobId, i]))
  const tokens = new Array<number>(jobs.length).fill(0)
  const finished = new Array<boolean>(jobs.length).fill(false)
  const report = (index: number) =>
    onProgress?.({
      total: jobs.length,
      finished: finished.filter(Boolean).length,
      generatedTokens: tokens.reduce((a, b) => a + b, 0),
      index,
    })
  const onJobProgress = ({ jobId, data }: { jobId: string; data: unknown }) => {
    const index = positions.get(jobId)
    if (index === undefined || finished[index]) return
    tokens[index] = (data as GenerationProgress).generatedTokens ?? tokens[index]
    report(index)
  }
  const outcomes = new Outcomes([...positions.keys()])
  const onCompleted = ({ jobId, returnvalue }: { jobId: string; returnvalue: unknown }) =>
    outcomes.complete(jobId, returnvalue as Json)
  const onFailed = ({ jobId, failedReason }: { jobId: string; failedReason: string }) =>
    outcomes.fail(jobId, failedReason)
  events.on('progress', onJobProgress)
  events.on('completed', onCompleted)
  events.on('failed', onFailed)
  try {
    // Listening before the jobs exist: no event of theirs can be missed.
    await events.waitUntilReady()
    await queue.addBulk(jobs)
    // Jobs that had finished before (the same batch added again) send no more events. The state
    // first, then the job: a job read before it finished and found finished after (it may finish
    // in between) would lack its result or reason, and that empty reason would win the race with
    // its event as an uncoded ERR_INTERNAL.
    await Promise.all(
      jobs.map(async ({ opts: { jobId } }) => {
        const state = await queue.getJobState(jobId)
        if (state !== 'completed' && state !== 'failed') return
        const job = await queue.getJob(jobId)
        if (state === 'completed') outcomes.complete(jobId, job?.returnvalue)
        else outcomes.fail(jobId, job?.failedReason ?? '')
      }),
    )
    return await Promise.all(
      outcomes.promises.map((outcome, index) =>
        outcome.then(
          (value) => {
            const result = fromJson<GenerateResult | GenerateResult[]>(value)
            finished[index] = true
            tokens[index] = tokensOf(result)
            report(index)
            return result
          },
          (reason: string) => {
            finished[index] = true
            report(index)
            throw fromFailedReason(reason)
          },
        ),
      ),
    )
  } finally {
    events.off('progress', onJobProgress)
    events.off('completed', onCompleted)
    events.off('failed', onFailed)
    if (!many.queueEvents) await events.close()
  }
}
