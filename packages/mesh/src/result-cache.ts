/** Default cap on entries kept per worker (name and key); the oldest go first. */
export const DEFAULT_CACHE_ENTRIES = 10_000
/** Default cap on the bytes kept per worker (name and key). */
export const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024
/** Default cap on the bytes kept for all workers of a node. */
export const DEFAULT_TOTAL_BYTES = 256 * 1024 * 1024

export interface ResultStoreInit {
  maxEntries?: number
  maxBytes?: number
  maxTotalBytes?: number
}

/**
 * The node's store for BackgrounDRb-style result caches: per worker (name and key), a
 * bounded map of keys to MessagePack-encoded values. It lives in the node's main thread,
 * so values survive restarts of the worker that wrote them. Bounded in entries and bytes,
 * per worker and for the node (each keyed instance is a worker of its own here): past a
 * bound the oldest values go first, so a worker storing in a loop cannot exhaust the node.
 */
export class ResultStore {
  readonly #maxEntries: number
  readonly #maxBytes: number
  readonly #maxTotalBytes: number
  readonly #byWorker = new Map<string, { entries: Map<string, Uint8Array>; bytes: number }>()
  /** Every stored value, oldest first: `slot \0 entry`. */
  readonly #age = new Map<string, { slot: string; entry: string }>()
  #totalBytes = 0

  constructor(init: ResultStoreInit = {}) {
    this.#maxEntries = init.maxEntries ?? DEFAULT_CACHE_ENTRIES
    this.#maxBytes = init.maxBytes ?? DEFAULT_CACHE_BYTES
    this.#maxTotalBytes = init.maxTotalBytes ?? DEFAULT_TOTAL_BYTES
  }

  #slot(name: string, key: string | undefined): string {
    return `${name}\u0000${key ?? ''}`
  }

  /** Stores a value; false (and nothing stored) if it alone is larger than a worker may keep. */
  set(name: string, key: string | undefined, entry: string, value: Uint8Array): boolean {
    if (value.length > this.#maxBytes || value.length > this.#maxTotalBytes) return false
    const slot = this.#slot(name, key)
    let worker = this.#byWorker.get(slot)
    if (!worker) {
      worker = { entries: new Map(), bytes: 0 }
      this.#byWorker.set(slot, worker)
    }
    // Re-inserting moves the entry to the newest position.
    this.#remove(slot, entry)
    worker.entries.set(entry, value)
    worker.bytes += value.length
    this.#totalBytes += value.length
    this.#age.set(`${slot}\u0000${entry}`, { slot, entry })
    while (worker.entries.size > this.#maxEntries || worker.bytes > this.#maxBytes) {
      this.#remove(slot, worker.entries.keys().next().value as string)
    }
    for (const [, oldest] of this.#age) {
      if (this.#totalBytes <= this.#maxTotalBytes) break
      this.#remove(oldest.slot, oldest.entry)
    }
    return true
  }

  delete(name: string, key: string | undefined, entry: string): void {
    this.#remove(this.#slot(name, key), entry)
  }

  get(name: string, key: string | undefined, entry: string): Uint8Array | undefined {
    return this.#byWorker.get(this.#slot(name, key))?.entries.get(entry)
  }

  /** Forgets everything a worker stored (when it is deleted for good). */
  drop(name: string, key: string | undefined): void {
    const slot = this.#slot(name, key)
    for (const entry of [...(this.#byWorker.get(slot)?.entries.keys() ?? [])]) this.#remove(slot, entry)
    this.#byWorker.delete(slot)
  }

  /** Bytes stored for all workers. */
  get totalBytes(): number {
    return this.#totalBytes
  }

  #remove(slot: string, entry: string): void {
    const worker = this.#byWorker.get(slot)
    const value = worker?.entries.get(entry)
    if (!worker || value === undefined) return
    worker.entries.delete(entry)
    worker.bytes -= value.length
    this.#totalBytes -= value.length
    this.#age.delete(`${slot}\u0000${entry}`)
  }
}
