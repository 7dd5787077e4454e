import type { Logger } from 'pino'

/** Refusals logged one by one per remote address and window; the rest are counted. */
const BURST = 5
const WINDOW_MS = 10_000

interface Window {
  logged: number
  suppressed: number
  lastReason: string
  timer: NodeJS.Timeout | undefined
}

/**
 * Logs refused connections (failed handshakes) so that a flood from one address is a few
 * lines, not one per socket: the first BURST refusals of an address in a window are logged
 * as they happen, the rest are summed up in one line when the window ends.
 */
export class RefusalLog {
  readonly #logger: Logger
  readonly #windows = new Map<string, Window>()

  constructor(logger: Logger) {
    this.#logger = logger
  }

  /** Logs (or counts) one refusal of a connection from `address`. */
  refused(address: string, level: 'warn' | 'debug', fields: Record<string, unknown>, message: string): void {
    if (level === 'debug') {
      this.#logger.debug(fields, message)
      return
    }
    let window = this.#windows.get(address)
    if (!window) {
      window = { logged: 0, suppressed: 0, lastReason: '', timer: undefined }
      this.#windows.set(address, window)
      const started = window
      // Unref'd: a summary due must not keep a stopping process alive; it is only a log line.
      window.timer = setTimeout(() => this.#close(address, started), WINDOW_MS).unref()
    }
    if (window.logged < BURST) {
      window.logged++
      this.#logger.warn(fields, message)
    } else {
      window.suppressed++
      window.lastReason = message
    }
  }

  #close(address: string, window: Window): void {
    this.#windows.delete(address)
    if (window.suppressed === 0) return
    this.#logger.warn(
      { peer: address, refused: window.suppressed },
      `refused ${window.suppressed} more connections from ${address} in ${WINDOW_MS / 1000} s (last: ${window.lastReason})`,
    )
  }
}

const logs = new WeakMap<Logger, RefusalLog>()

/** The refusal log of a component (one per logger, so per node or per worker thread). */
export function refusalLogOf(logger: Logger): RefusalLog {
  let log = logs.get(logger)
  if (!log) {
    log = new RefusalLog(logger.child({ component: 'mesh:link' }))
    logs.set(logger, log)
  }
  return log
}
