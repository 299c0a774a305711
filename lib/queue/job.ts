// A generation as a BullMQ job: its data (input and options, as JSON), the checks made before it
// is queued, and its id.
import { createHash } from 'node:crypto'
import { checkOptionsObject, invalidArg } from '../errors'
import { type GenerateOptions, toNativeOptions } from '../generate-options'
import { type ModelInput, toTokenIds } from '../tokenizer'
import { canonical, fromJson, type Json, toJson } from './json'

/**
 * The options of a queued generation: those of `generate`, less `signal` and `onToken`, which
 * cannot cross into another process (cancel a job with the worker's `cancelJob`; follow it with
 * its progress).
 */
export type QueuedGenerateOptions = Omit<GenerateOptions, 'signal' | 'onToken'>

/** What a generation job holds in Redis. */
export interface GenerationJobData {
  /** Text, or token ids. */
  input: string | number[]
  /** The options as JSON (non-finite numbers tagged, see json.ts). */
  options: Json
}

/** The BullMQ job name of every generation. */
export const JOB_NAME = 'generate'

/**
 * The job data of one generation, checked as `generate` checks its arguments before they reach
 * the model (names and types of options, token ids), so that a mistake fails here with the same
 * coded error instead of in a worker. What only the model can judge (a token id past the
 * vocabulary, a prompt past the context, an option's value) fails in the worker.
 */
export function toJobData(input: ModelInput, options: QueuedGenerateOptions): GenerationJobData {
  checkOptionsObject(options)
  for (const name of ['signal', 'onToken'] as const) {
    if ((options as GenerateOptions)[name] !== undefined)
      throw invalidArg(`${name} cannot be sent to a queue worker (cancel a job with worker.cancelJob)`)
  }
  toNativeOptions(options)
  if (typeof input === 'string') return { input, options: toJson(options) }
  return { input: Array.from(toTokenIds(input)), options: toJson(options) }
}

/** The input and options of a job, as its worker reads them (data added by hand is checked too). */
export function fromJobData(data: unknown): { input: ModelInput; options: QueuedGenerateOptions } {
  const { input, options } = (data ?? {}) as Partial<GenerationJobData>
  if (typeof input !== 'string' && !Array.isArray(input))
    throw invalidArg('job data: input must be text or an array of token ids')
  checkOptionsObject(options, 'job data: options')
  return { input, options: fromJson<QueuedGenerateOptions>(options as Json) }
}

const hash = (text: string) => createHash('sha256').update(text).digest('hex')

/** The id of a batch made of these jobs: the same inputs and options give the same id. */
export function batchIdOf(jobs: GenerationJobData[]): string {
  return hash(canonical(jobs.map(({ input, options }) => [input, options])))
}

/**
 * The job id of input `index` of batch `batchId`: a hash of both and of the job's data, so that
 * submitting the same batch again finds the jobs it added (BullMQ adds no job whose id exists).
 * Prefixed so that it is never all digits (BullMQ refuses integer-like custom ids).
 */
export function jobIdOf(batchId: string, index: number, job: GenerationJobData): string {
  return `gen-${hash(canonical([batchId, index, job.input, job.options])).slice(0, 40)}`
}
