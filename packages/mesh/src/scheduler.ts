import { Cron } from 'croner'
import type { Logger } from 'pino'
import { BurstLog } from './burst-log.js'
import { ConfigError, type ScheduleConfig } from './config.js'

/** Counters of one schedule, for logs and tests. */
export interface ScheduleStats {
  runs: number
  skipped: number
  failed: number
}

/**
 * Calls worker methods on cron expressions (seconds field supported, node local time
 * unless a timezone is set) or fixed intervals. A run still going when the next is due is
 * skipped and logged, never stacked: a run past its timeout is reported as failed, and the
 * schedule waits for it to end (the worker is still computing it) before the next.
 */
export class Scheduler {
  readonly #schedules: ScheduleConfig[]
  readonly #run: (schedule: ScheduleConfig) => Promise<void>
  readonly #defaultTimeout: number
  readonly #logger: Logger
  /** Skips and failures can come every few ms: a few lines per schedule, then a summary. */
  readonly #warnings: BurstLog
  readonly #stops: Array<() => void> = []
  readonly stats: ScheduleStats[]
  #running: boolean[]

  /**
   * `run` settles when the worker has finished the call (or crashed), however long that
   * takes; runs taking longer than their `timeout` (default `defaultTimeout`) are failures.
   */
  constructor(
    schedules: ScheduleConfig[],
    run: (schedule: ScheduleConfig) => Promise<void>,
    defaultTimeout: number,
    logger: Logger,
  ) {
    this.#schedules = schedules
    this.#run = run
    this.#defaultTimeout = defaultTimeout
    this.#logger = logger.child({ component: 'mesh:scheduler' })
    this.#warnings = new BurstLog(
      this.#logger,
      (index, n, last, seconds) => `schedule ${index}: ${n} more warnings in ${seconds} s (last: ${last})`,
      (index, n) => ({ schedule: Number(index), suppressed: n }),
    )
    this.stats = schedules.map(() => ({ runs: 0, skipped: 0, failed: 0 }))
    this.#running = schedules.map(() => false)
  }

  /** Starts every schedule. Throws `ConfigError` naming the key of a bad cron expression or time zone. */
  start(): void {
    this.#schedules.forEach((schedule, index) => {
      const fire = (): void => this.#fire(index)
      if (schedule.timezone !== undefined) checkTimeZone(schedule, index)
      if (schedule.cron !== undefined) {
        let job: Cron
        try {
          job = new Cron(schedule.cron, { timezone: schedule.timezone }, fire)
        } catch (error) {
          throw new ConfigError(`key "schedules.${index}.cron": ${(error as Error).message}`)
        }
        this.#stops.push(() => job.stop())
      } else {
        const timer = setInterval(fire, schedule.every)
        this.#stops.push(() => clearInterval(timer))
      }
    })
  }

  /** Stops every schedule; runs in progress finish on their own. */
  stop(): void {
    for (const stop of this.#stops.splice(0)) stop()
  }

  #fire(index: number): void {
    const schedule = this.#schedules[index] as ScheduleConfig
    const stats = this.stats[index] as ScheduleStats
    const what = `${schedule.worker}.${schedule.method}`
    if (this.#running[index]) {
      stats.skipped++
      this.#warnings.warn(
        String(index),
        { schedule: index, call: what, skipped: stats.skipped },
        `skipped ${what}: the previous run is still going`,
      )
      return
    }
    this.#running[index] = true
    stats.runs++
    const timeout = schedule.timeout ?? this.#defaultTimeout
    let overdue = false
    const timer = setTimeout(() => {
      overdue = true
      stats.failed++
      this.#warnings.warn(
        String(index),
        { schedule: index, call: what },
        `scheduled ${what} timed out after ${timeout} ms; the next runs wait until it ends`,
      )
    }, timeout)
    this.#run(schedule)
      .catch((error: unknown) => {
        if (overdue) return
        stats.failed++
        this.#warnings.warn(
          String(index),
          { schedule: index, call: what, err: error },
          `scheduled ${what} failed: ${(error as Error).message}`,
        )
      })
      .finally(() => {
        clearTimeout(timer)
        this.#running[index] = false
      })
  }
}

/** A time zone the runtime does not know is a config error naming the key, as a bad cron is. */
function checkTimeZone(schedule: ScheduleConfig, index: number): void {
  const key = `key "schedules.${index}.timezone"`
  if (schedule.cron === undefined) throw new ConfigError(`${key}: a time zone applies to cron, not to every`)
  try {
    new Intl.DateTimeFormat('en', { timeZone: schedule.timezone })
  } catch {
    throw new ConfigError(`${key}: unknown time zone "${schedule.timezone}"`)
  }
}
