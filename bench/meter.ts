/** Counts received messages and reports the rate over a window that opens after a warm-up. */
import { WARMUP_MS, WINDOW_MS } from './knobs.js'

export interface OneWay {
  perSec: number
  bytesPerSec: number
}

export class Meter {
  count = 0
  bytes = 0
  #started = false
  readonly result: Promise<OneWay>
  #resolve!: (r: OneWay) => void

  constructor() {
    this.result = new Promise((resolve) => {
      this.#resolve = resolve
    })
  }

  /** Records arrivals; the first one starts the warm-up. */
  add(messages: number, bytes: number): void {
    if (!this.#started) {
      this.#started = true
      setTimeout(() => {
        const count = this.count
        const total = this.bytes
        const t = performance.now()
        setTimeout(() => {
          const seconds = (performance.now() - t) / 1000
          this.#resolve({ perSec: (this.count - count) / seconds, bytesPerSec: (this.bytes - total) / seconds })
        }, WINDOW_MS)
      }, WARMUP_MS)
    }
    this.count += messages
    this.bytes += bytes
  }
}
