import { describe, expect, it } from 'vitest'
import { Deadlines } from '../src/deadlines.js'

interface Wait {
  name: string
  deadline: number
  timeout: number
  startedAt: number
}

function waits() {
  const expired: Array<{ name: string; late: number }> = []
  let onExpire: () => void = () => {}
  const deadlines = new Deadlines<Wait>((w) => {
    expired.push({ name: w.name, late: performance.now() - w.startedAt - w.timeout })
    onExpire()
  })
  const start = (name: string, timeout: number): Wait => {
    const w = { name, deadline: 0, timeout: 0, startedAt: performance.now() }
    deadlines.add(w, timeout)
    return w
  }
  const expiredCount = (n: number) =>
    new Promise<void>((resolve) => {
      if (expired.length >= n) resolve()
      else
        onExpire = () => {
          if (expired.length >= n) resolve()
        }
    })
  return { deadlines, expired, start, expiredCount }
}

describe('Deadlines', () => {
  it('expires each wait once, never early, in deadline order across timeouts', async () => {
    const { expired, start, expiredCount } = waits()
    start('b', 80)
    start('a', 30)
    start('c', 80)
    start('d', 50)
    await expiredCount(4)
    expect(expired.map((e) => e.name)).toEqual(['a', 'd', 'b', 'c'])
    for (const e of expired) expect(e.late).toBeGreaterThanOrEqual(-1)
  })

  it('forgets waits that ended, and re-arms for the next one still due', async () => {
    const { deadlines, expired, start, expiredCount } = waits()
    const settled = start('settled', 20)
    start('due', 60)
    deadlines.delete(settled)
    await expiredCount(1)
    expect(expired.map((e) => e.name)).toEqual(['due'])
  })

  it('clear() stops the timer: nothing expires afterwards', async () => {
    const { deadlines, expired, start } = waits()
    start('x', 10)
    deadlines.clear()
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(expired).toEqual([])
  })
})
