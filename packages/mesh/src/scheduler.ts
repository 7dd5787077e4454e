import { Cron } from 'croner'
import type { Logger } from 'pino'
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
 * skipped and logged, never stacked.
 */
export class Scheduler {
  readonly #schedules: ScheduleConfig[]
  readonly #run: (schedule: ScheduleConfig) => Promise<void>
  readonly #logger: Logger
  readonly #stops: Array<() => void> = []
  readonly stats: ScheduleStats[]
  #running: boolean[]

  constructor(schedules: ScheduleConfig[], run: (schedule: ScheduleConfig) => Promise<void>, logger: Logger) {
    this.#schedules = schedules
    this.#run = run
    this.#logger = logger.child({ component: 'mesh:scheduler' })
    this.stats = schedules.map(() => ({ runs: 0, skipped: 0, failed: 0 }))
    this.#running = schedules.map(() => false)
  }

  /** Starts every schedule. Throws on an invalid cron expression, naming the schedule. */
  start(): void {
    this.#schedules.forEach((schedule, index) => {
      const fire = (): void => this.#fire(index)
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
      this.#logger.warn(
        { schedule: index, call: what, skipped: stats.skipped },
        `skipped ${what}: the previous run is still going`,
      )
      return
    }
    this.#running[index] = true
    stats.runs++
    this.#run(schedule)
      .catch((error: unknown) => {
        stats.failed++
        this.#logger.warn(
          { schedule: index, call: what, err: error },
          `scheduled ${what} failed: ${(error as Error).message}`,
        )
      })
      .finally(() => {
        this.#running[index] = false
      })
  }
}
