/** Default cap on entries kept per worker (name and key); the oldest go first. */
export const DEFAULT_CACHE_ENTRIES = 10_000

/**
 * The node's store for BackgrounDRb-style result caches: per worker (name and key), a
 * bounded map of keys to MessagePack-encoded values. It lives in the node's main thread,
 * so values survive restarts of the worker that wrote them.
 */
export class ResultStore {
  readonly #maxEntries: number
  readonly #byWorker = new Map<string, Map<string, Uint8Array>>()

  constructor(maxEntries = DEFAULT_CACHE_ENTRIES) {
    this.#maxEntries = maxEntries
  }

  #slot(name: string, key: string | undefined): string {
    return `${name}\u0000${key ?? ''}`
  }

  set(name: string, key: string | undefined, entry: string, value: Uint8Array): void {
    const id = this.#slot(name, key)
    let entries = this.#byWorker.get(id)
    if (!entries) {
      entries = new Map()
      this.#byWorker.set(id, entries)
    }
    // Re-inserting moves the entry to the newest position.
    entries.delete(entry)
    entries.set(entry, value)
    if (entries.size > this.#maxEntries) {
      const oldest = entries.keys().next().value as string
      entries.delete(oldest)
    }
  }

  delete(name: string, key: string | undefined, entry: string): void {
    this.#byWorker.get(this.#slot(name, key))?.delete(entry)
  }

  get(name: string, key: string | undefined, entry: string): Uint8Array | undefined {
    return this.#byWorker.get(this.#slot(name, key))?.get(entry)
  }

  /** Forgets everything a worker stored (when it is deleted for good). */
  drop(name: string, key: string | undefined): void {
    this.#byWorker.delete(this.#slot(name, key))
  }
}
