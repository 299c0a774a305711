// A job's progress while its generation runs: the tokens so far, sent to Redis at most a few times
// a second (each update is a Redis round trip and an event to every listener; tokens come far
// faster than anyone reads them).
import type { Job } from 'bullmq'
import type { GenerateStep } from '../generate-options'

/** A generation job's progress (`job.progress`, and QueueEvents' `progress` events). */
export interface GenerationProgress {
  /** New tokens generated so far. */
  generatedTokens: number
  /** The text generated so far (the steps' `text`, concatenated). */
  completion: string
}

/** Least time between two updates of one job: at most 4 a second. */
export const PROGRESS_INTERVAL_MS = 250

export class ProgressReporter {
  private progress: GenerationProgress = { generatedTokens: 0, completion: '' }
  private lastSent = 0
  private timer: NodeJS.Timeout | undefined
  /** Updates go one after another, so that Redis sees them in order. */
  private sending: Promise<void> = Promise.resolve()

  constructor(private readonly job: Job) {}

  /** Counts a token; sends now if the last update is old enough, else once it is. */
  add(step: GenerateStep): void {
    this.progress = {
      generatedTokens: this.progress.generatedTokens + 1,
      completion: this.progress.completion + step.text,
    }
    if (this.timer) return
    const wait = this.lastSent + PROGRESS_INTERVAL_MS - Date.now()
    if (wait <= 0) this.send()
    else this.timer = setTimeout(() => this.send(), wait)
  }

  /**
   * Drops an update not yet sent and waits for those under way: the job's result (or failure)
   * says the rest, and no progress event may follow it.
   */
  async end(): Promise<void> {
    clearTimeout(this.timer)
    this.timer = undefined
    await this.sending
  }

  private send(): void {
    this.timer = undefined
    this.lastSent = Date.now()
    const progress = this.progress
    // Progress is advisory: a failed update (Redis away for a moment) must not fail the
    // generation, whose result BullMQ stores (and retries storing) on its own.
    this.sending = this.sending.then(() => this.job.updateProgress(progress as unknown as object).catch(() => {}))
  }
}
