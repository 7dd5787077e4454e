import { pino } from 'pino'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { RefusalLog } from '../src/refusal-log.js'
import { LogCapture } from './helpers.js'

afterEach(() => {
  vi.useRealTimers()
})

describe('RefusalLog', () => {
  it('logs the first refusals of an address one by one and sums up the rest when the window ends', () => {
    vi.useFakeTimers()
    const logs = new LogCapture()
    const log = new RefusalLog(pino({ level: 'info' }, logs))
    for (let i = 0; i < 400; i++) log.refused('10.0.0.9', 'warn', { peer: `10.0.0.9:${i}` }, `handshake ${i} failed`)
    log.refused('10.0.0.7', 'warn', { peer: '10.0.0.7:1' }, 'another address')
    expect(logs.lines.map((l) => l.msg)).toEqual([
      'handshake 0 failed',
      'handshake 1 failed',
      'handshake 2 failed',
      'handshake 3 failed',
      'handshake 4 failed',
      'another address',
    ])
    vi.advanceTimersByTime(10_000)
    expect(logs.lines).toHaveLength(7)
    expect(logs.lines[6]).toMatchObject({ level: 40, peer: '10.0.0.9', refused: 395 })
    expect(String(logs.lines[6]?.msg)).toContain('last: handshake 399 failed')
    // A new window logs again.
    log.refused('10.0.0.9', 'warn', {}, 'later')
    expect(logs.lines.at(-1)?.msg).toBe('later')
  })

  it('passes debug lines (port probes) through without counting them', () => {
    const logs = new LogCapture()
    const log = new RefusalLog(pino({ level: 'debug' }, logs))
    for (let i = 0; i < 10; i++) log.refused('10.0.0.9', 'debug', {}, 'probe')
    log.refused('10.0.0.9', 'warn', {}, 'real')
    expect(logs.lines.filter((l) => l.msg === 'probe')).toHaveLength(10)
    expect(logs.lines.at(-1)).toMatchObject({ level: 40, msg: 'real' })
  })
})
