import { MAX_TIMER_MS } from './address.js'
import { AbortError, TimeoutError } from './errors.js'

/** Per-call options of every wait in wmesh. */
export interface WaitOptions {
  /** Milliseconds until the wait fails with `TimeoutError`. */
  timeout?: number
  /** Ends the wait with `AbortError` when aborted. */
  signal?: AbortSignal
}

/**
 * Runs `start`, which settles the wait through `resolve`/`reject` and returns a cleanup
 * function; adds the deadline and the abort signal. Cleanup runs exactly once, however
 * the wait ends.
 */
export function waitWithDeadline<T>(
  what: string,
  options: WaitOptions,
  start: (resolve: (value: T) => void, reject: (error: Error) => void) => () => void,
): Promise<T> {
  const { timeout, signal } = options
  if (signal?.aborted) return Promise.reject(new AbortError(`${what} was aborted`, { cause: signal.reason }))
  return new Promise<T>((resolve, reject) => {
    let done = false
    let timer: ReturnType<typeof setTimeout> | undefined
    let cleanup: (() => void) | undefined
    const onAbort = (): void => finish(() => reject(new AbortError(`${what} was aborted`, { cause: signal?.reason })))
    const finish = (settle: () => void): void => {
      if (done) return
      done = true
      if (timer !== undefined) clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      cleanup?.()
      settle()
    }
    // Node turns a delay above MAX_TIMER_MS (about 24 days) into 1 ms: such a wait has no timer.
    if (timeout !== undefined && Number.isFinite(timeout) && timeout <= MAX_TIMER_MS) {
      timer = setTimeout(() => finish(() => reject(new TimeoutError(`${what} timed out after ${timeout} ms`))), timeout)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      cleanup = start(
        (value) => finish(() => resolve(value)),
        (error) => finish(() => reject(error)),
      )
    } catch (error) {
      // What `start` throws ends the wait at once, with no timer or listener left behind.
      finish(() => reject(error instanceof Error ? error : new Error(String(error))))
      return
    }
    if (done) cleanup()
  })
}
