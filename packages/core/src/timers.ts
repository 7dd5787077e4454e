import { MAX_TIMER_MS } from './address.js'

/** A timer started with `addTimer` or `addPeriodicTimer`. Cancel it with `cancelTimer` or `cancel()`. */
export class Timer {
  #handle: ReturnType<typeof setTimeout> | undefined
  readonly #owner: TimerSet

  /** @internal */
  constructor(owner: TimerSet, handle: ReturnType<typeof setTimeout>) {
    this.#owner = owner
    this.#handle = handle
  }

  /** True until the timer is cancelled, its owner ends, or (one-shot) it has fired. */
  get active(): boolean {
    return this.#handle !== undefined
  }

  /** Stops the timer. Safe to call more than once. */
  cancel(): void {
    if (this.#handle === undefined) return
    clearTimeout(this.#handle)
    this.#handle = undefined
    this.#owner.forget(this)
  }

  /** @internal Marks a one-shot timer as done without clearing it. */
  settle(): void {
    this.#handle = undefined
    this.#owner.forget(this)
  }
}

/**
 * Owns the timers of one worker or one connection, so that ending the owner ends them.
 * A callback that throws is reported to `onError` instead of escaping into the event loop.
 */
export class TimerSet {
  readonly #timers = new Set<Timer>()
  readonly #onError: (error: unknown) => void
  #closed = false

  constructor(onError: (error: unknown) => void) {
    this.#onError = onError
  }

  get size(): number {
    return this.#timers.size
  }

  /** Runs `fn` once after `ms` milliseconds. */
  once(ms: number, fn: () => unknown): Timer {
    this.#check(ms)
    const timer: Timer = new Timer(
      this,
      setTimeout(() => {
        timer.settle()
        this.#run(fn)
      }, ms),
    )
    this.#timers.add(timer)
    return timer
  }

  /** Runs `fn` every `ms` milliseconds until cancelled. */
  every(ms: number, fn: () => unknown): Timer {
    this.#check(ms)
    const timer = new Timer(
      this,
      setInterval(() => this.#run(fn), ms),
    )
    this.#timers.add(timer)
    return timer
  }

  /** @internal */
  forget(timer: Timer): void {
    this.#timers.delete(timer)
  }

  /** Cancels every timer; later `once`/`every` calls throw. */
  close(): void {
    this.#closed = true
    for (const timer of [...this.#timers]) timer.cancel()
  }

  #check(ms: number): void {
    if (this.#closed) throw new Error('cannot add a timer: its owner has ended')
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0 || ms > MAX_TIMER_MS) {
      throw new RangeError(`timer interval must be between 0 and ${MAX_TIMER_MS} ms, got ${ms}`)
    }
  }

  #run(fn: () => unknown): void {
    try {
      const result = fn()
      if (result instanceof Promise) result.catch(this.#onError)
    } catch (error) {
      this.#onError(error)
    }
  }
}
