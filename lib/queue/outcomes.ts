// Waiting for the jobs of a batch to end.
import type { Json } from './json'

/**
 * How each job of a batch ends, however it is learnt (an event, or the job's state): the first
 * word counts. One listener per event for the whole batch (job.waitUntilFinished would add two
 * listeners per job, and one to the queue).
 */
export class Outcomes {
  readonly promises: Promise<Json>[]
  private readonly pending = new Map<string, { resolve: (value: Json) => void; reject: (reason: string) => void }>()

  constructor(ids: string[]) {
    this.promises = ids.map((id) => new Promise((resolve, reject) => this.pending.set(id, { resolve, reject })))
    // A rejection is handled by the caller's Promise.all, or not at all once another failed first.
    for (const promise of this.promises) promise.catch(() => {})
  }

  complete(id: string, value: Json) {
    this.pending.get(id)?.resolve(value)
    this.pending.delete(id)
  }

  fail(id: string, reason: string) {
    this.pending.get(id)?.reject(reason)
    this.pending.delete(id)
  }
}
