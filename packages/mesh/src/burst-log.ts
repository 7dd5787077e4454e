import type { Logger } from 'pino'

/** Lines logged one by one per key and window; the rest are counted. */
const BURST = 5
const WINDOW_MS = 10_000

interface Window {
  logged: number
  suppressed: number
  lastMessage: string
}

/** Writes the line that sums up what a window held back. */
export type Summarize = (key: string, suppressed: number, lastMessage: string, windowSeconds: number) => string

/**
 * Warnings that a peer (or a caller) can trigger at will, so that a flood is a few lines,
 * not one per event: the first BURST of a key in a window are logged as they happen, the
 * rest are summed up in one line when the window ends. Memory is one entry per key seen
 * in the window.
 */
export class BurstLog {
  readonly #logger: Logger
  readonly #summarize: Summarize
  readonly #fields: (key: string, suppressed: number) => Record<string, unknown>
  readonly #windows = new Map<string, Window>()

  constructor(
    logger: Logger,
    summarize: Summarize,
    fields: (key: string, suppressed: number) => Record<string, unknown> = () => ({}),
  ) {
    this.#logger = logger
    this.#summarize = summarize
    this.#fields = fields
  }

  /** Logs (or counts) one warning about `key`. */
  warn(key: string, fields: Record<string, unknown>, message: string): void {
    let window = this.#windows.get(key)
    if (!window) {
      window = { logged: 0, suppressed: 0, lastMessage: '' }
      this.#windows.set(key, window)
      const started = window
      // Unref'd: a summary due must not keep a stopping process alive; it is only a log line.
      setTimeout(() => this.#close(key, started), WINDOW_MS).unref()
    }
    if (window.logged < BURST) {
      window.logged++
      this.#logger.warn(fields, message)
    } else {
      window.suppressed++
      window.lastMessage = message
    }
  }

  #close(key: string, window: Window): void {
    this.#windows.delete(key)
    if (window.suppressed === 0) return
    this.#logger.warn(
      this.#fields(key, window.suppressed),
      this.#summarize(key, window.suppressed, window.lastMessage, WINDOW_MS / 1000),
    )
  }
}
