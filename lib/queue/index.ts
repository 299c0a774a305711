/**
 * `nexttoken/queue`: generation on a BullMQ job queue (Redis), for more prompts than one process
 * or one machine should take. Workers (`createGenerationWorker`) each run one model whose
 * scheduler decodes the jobs they hold together; producers add generations in bulk
 * (`enqueueGenerations`) or add them and await the results (`generateMany`).
 *
 * Needs the optional peer dependencies `bullmq` (and its Redis client `ioredis`): importing
 * `nexttoken` itself never loads them.
 * @module nexttoken/queue
 */
export type { GenerationLimits } from '../limits'
export { type GenerationWorkerOptions, createGenerationWorker, GenerationWorker } from './worker'
export {
  type BatchProgress,
  type EnqueueOptions,
  enqueueGenerations,
  type GenerateManyOptions,
  generateMany,
} from './producer'
export { type GenerationJobData, JOB_NAME, type QueuedGenerateOptions } from './job'
export type { Json } from './json'
export { type GenerationProgress, PROGRESS_INTERVAL_MS } from './progress'
