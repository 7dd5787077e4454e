import type { RestartPolicy } from './config.js'

/**
 * Restart delays for one worker instance: exponential from `initialDelay`, capped at
 * `maxDelay`, starting over once an instance has stayed up for `resetAfter`.
 */
export class Backoff {
  #policy: RestartPolicy
  /** Crashes since the instance last stayed up for `resetAfter`. */
  consecutive = 0

  constructor(policy: RestartPolicy) {
    this.#policy = policy
  }

  /** Applies `policy` from the next crash on (the count of crashes so far is kept). */
  use(policy: RestartPolicy): void {
    this.#policy = policy
  }

  /** Records a crash of an instance that had been up `uptime` ms; returns the delay before restarting. */
  crashed(uptime: number): number {
    if (uptime >= this.#policy.resetAfter) this.consecutive = 0
    this.consecutive++
    const delay = this.#policy.initialDelay * 2 ** (this.consecutive - 1)
    return Math.min(this.#policy.maxDelay, delay)
  }

  /** True once restarts come at the cap: a crash loop worth reporting loudly. */
  get looping(): boolean {
    return this.#policy.initialDelay * 2 ** (this.consecutive - 1) >= this.#policy.maxDelay || this.consecutive >= 5
  }
}
