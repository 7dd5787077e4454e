/** A small seeded generator (mulberry32), so a random fault schedule can be replayed from its seed. */
export class SeededRandom {
  readonly seed: number
  #state: number

  constructor(seed: number) {
    this.seed = seed >>> 0
    this.#state = this.seed
  }

  /** A seed from `process.env[variable]` when set (to replay a failure), else a fresh one. */
  static fromEnv(variable: string): SeededRandom {
    const given = process.env[variable]
    const seed = given !== undefined && given !== '' ? Number(given) : Math.floor(Math.random() * 2 ** 32)
    if (!Number.isInteger(seed) || seed < 0) throw new Error(`${variable} must be a non-negative integer, got ${given}`)
    return new SeededRandom(seed)
  }

  /** A float in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0
    let t = this.#state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1))
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from nothing')
    return items[this.int(0, items.length - 1)] as T
  }
}
