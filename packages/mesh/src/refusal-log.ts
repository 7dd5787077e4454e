import type { Logger } from 'pino'
import { BurstLog } from './burst-log.js'

/**
 * Logs refused connections (failed handshakes) so that a flood from one address is a few
 * lines, not one per socket (a `BurstLog` keyed by remote address).
 */
export class RefusalLog {
  readonly #logger: Logger
  readonly #burst: BurstLog

  constructor(logger: Logger) {
    this.#logger = logger
    this.#burst = new BurstLog(
      logger,
      (address, n, last, seconds) => `refused ${n} more connections from ${address} in ${seconds} s (last: ${last})`,
      (address, n) => ({ peer: address, refused: n }),
    )
  }

  /** Logs (or counts) one refusal of a connection from `address`; debug lines (port probes) pass uncounted. */
  refused(address: string, level: 'warn' | 'debug', fields: Record<string, unknown>, message: string): void {
    if (level === 'debug') this.#logger.debug(fields, message)
    else this.#burst.warn(address, fields, message)
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
