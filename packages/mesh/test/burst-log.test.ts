import { pino } from 'pino'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { BurstLog } from '../src/burst-log.js'
import { LogCapture } from './helpers.js'

afterEach(() => {
  vi.useRealTimers()
})

describe('BurstLog', () => {
  it('logs the first lines of each key, then one summary per key and window with its own fields', () => {
    vi.useFakeTimers()
    const logs = new LogCapture()
    const log = new BurstLog(
      pino({ level: 'info' }, logs),
      (key, n, last, seconds) => `${key}: ${n} more in ${seconds} s, last ${last}`,
      (key, n) => ({ method: key, failed: n }),
    )
    for (let i = 0; i < 12; i++) log.warn('a', { i }, `a ${i}`)
    log.warn('b', {}, 'b 0')
    expect(logs.lines.map((l) => l.msg)).toEqual(['a 0', 'a 1', 'a 2', 'a 3', 'a 4', 'b 0'])
    vi.advanceTimersByTime(10_000)
    // 'b' held nothing back: no summary for it.
    expect(logs.lines.slice(6)).toEqual([
      expect.objectContaining({ level: 40, method: 'a', failed: 7, msg: 'a: 7 more in 10 s, last a 11' }),
    ])
    log.warn('a', {}, 'a again')
    expect(logs.lines.at(-1)?.msg).toBe('a again')
  })
})
