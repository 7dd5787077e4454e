/**
 * Messages between a worker thread and its node go in batches: everything posted in one
 * tick crosses as one array. A postMessage costs about as much as the small call it
 * carries, so under load this divides the thread-hop cost by the batch size.
 */
export class PortBatch<T> {
  readonly #post: (batch: T[]) => void
  #batch: T[] = []

  constructor(post: (batch: T[]) => void) {
    this.#post = post
  }

  /** Queues one message for the end of this tick. */
  push(message: T): void {
    if (this.#batch.length === 0) queueMicrotask(this.#flush)
    this.#batch.push(message)
  }

  readonly #flush = (): void => {
    const batch = this.#batch
    this.#batch = []
    if (batch.length > 0) this.#post(batch)
  }
}
