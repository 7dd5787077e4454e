import { MAX_TIMER_MS } from '@wmesh/core/internal'

/** Something that expires: its deadline (performance.now() time) and the timeout it came from. */
export interface Expiring {
  deadline: number
  timeout: number
}

/**
 * Deadlines of many waits behind one timer. Waits with the same timeout expire in the order
 * they started, so each timeout keeps an insertion-ordered set and only its oldest entry
 * can be due; the timer is armed for the earliest of those. Adding and removing a wait
 * costs a Set operation, not a timer each: at a hundred thousand calls a second, timers
 * were a tenth of the caller's time.
 */
export class Deadlines<T extends Expiring> {
  readonly #byTimeout = new Map<number, Set<T>>()
  readonly #expire: (item: T) => void
  #timer: NodeJS.Timeout | undefined
  #armedFor = Number.POSITIVE_INFINITY

  /** `expire` is called once for each item whose deadline passed (it should `delete` it). */
  constructor(expire: (item: T) => void) {
    this.#expire = expire
  }

  /** Starts `item`'s wait of `timeout` ms from now. */
  add(item: T, timeout: number): void {
    const now = performance.now()
    item.timeout = timeout
    item.deadline = now + timeout
    let set = this.#byTimeout.get(timeout)
    if (!set) {
      set = new Set()
      this.#byTimeout.set(timeout, set)
    }
    set.add(item)
    if (item.deadline < this.#armedFor) this.#arm(item.deadline, now)
  }

  /** Ends `item`'s wait (it settled). */
  delete(item: T): void {
    const set = this.#byTimeout.get(item.timeout)
    if (!set?.delete(item)) return
    if (set.size === 0) this.#byTimeout.delete(item.timeout)
  }

  /** Stops the timer; the waits left are forgotten. */
  clear(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#armedFor = Number.POSITIVE_INFINITY
    this.#byTimeout.clear()
  }

  readonly #sweep = (): void => {
    this.#timer = undefined
    this.#armedFor = Number.POSITIVE_INFINITY
    const now = performance.now()
    let next = Number.POSITIVE_INFINITY
    for (const set of [...this.#byTimeout.values()]) {
      for (const item of set) {
        if (item.deadline > now) {
          next = Math.min(next, item.deadline)
          break
        }
        this.#expire(item)
        // Expiring must end the wait; make sure it does, or the sweep would spin on it.
        this.delete(item)
      }
    }
    if (next < Number.POSITIVE_INFINITY) this.#arm(next, now)
  }

  #arm(at: number, now: number): void {
    clearTimeout(this.#timer)
    this.#armedFor = at
    // Node timers turn delays above 2^31-1 ms into 1 ms.
    this.#timer = setTimeout(this.#sweep, Math.min(MAX_TIMER_MS, Math.max(1, Math.ceil(at - now))))
  }
}
