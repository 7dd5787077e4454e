import { join } from 'node:path'
import { ConfigError, type MeshNode } from '@wmesh/mesh'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { fixtures, startNode } from './helpers.js'

const clock = join(fixtures, 'clock-worker.mjs')
const nodes: MeshNode[] = []

afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()))
})

interface Report {
  ticks: Array<{ at: number; data: unknown }>
  maxActive: number
  slowRuns: number
}

/** Reads the clock worker's record until it holds `n` ticks; ticks only come on second boundaries. */
async function waitForTicks(node: MeshNode, n: number, timeout: number): Promise<Report> {
  const deadline = Date.now() + timeout
  for (;;) {
    const report = (await node.worker('clock').call('report')) as Report
    if (report.ticks.length >= n) return report
    if (Date.now() > deadline) throw new Error(`only ${report.ticks.length} of ${n} ticks within ${timeout} ms`)
    await new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() % 1000) + 20))
  }
}

describe('schedules', () => {
  it('fires a cron expression with a seconds field on the right seconds, with its data', async () => {
    const { node } = await startNode({
      logLevel: 'warn',
      workers: { clock: { file: clock } },
      schedules: [{ worker: 'clock', method: 'tick', cron: '*/2 * * * * *', data: { job: 'even' } }],
    })
    nodes.push(node)
    const report = await waitForTicks(node, 2, 8000)
    for (const tick of report.ticks) {
      const at = new Date(tick.at)
      expect(at.getSeconds() % 2).toBe(0)
      // The call lands shortly after the second starts.
      expect(at.getMilliseconds()).toBeLessThan(500)
      expect(tick.data).toEqual({ job: 'even' })
    }
    const [first, second] = report.ticks
    expect(Math.round(((second?.at ?? 0) - (first?.at ?? 0)) / 1000)).toBe(2)
    expect(node.scheduleStats()[0]).toMatchObject({ skipped: 0, failed: 0 })
  })

  it('skips a run that is due while the previous one is still going, instead of stacking it', async () => {
    const { node, logs } = await startNode({
      logLevel: 'warn',
      workers: { clock: { file: clock } },
      schedules: [{ worker: 'clock', method: 'slow', every: 100, data: 350 }],
    })
    nodes.push(node)
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if ((node.scheduleStats()[0]?.runs ?? 0) >= 3) {
          clearInterval(check)
          resolve()
        }
      }, 50)
    })
    const stats = node.scheduleStats()[0]
    const report = (await node.worker('clock').call('report')) as Report
    expect(report.maxActive).toBe(1)
    expect(stats?.skipped).toBeGreaterThanOrEqual(4)
    expect(logs.lines.some((l) => String(l.msg).includes('skipped clock.slow: the previous run is still going'))).toBe(
      true,
    )
  })

  it('never stacks a run past its timeout either: it fails once, and the next runs wait for it to end', async () => {
    const { node, logs } = await startNode({
      logLevel: 'warn',
      workers: { clock: { file: clock } },
      schedules: [{ worker: 'clock', method: 'slow', every: 50, timeout: 100, data: 600 }],
    })
    nodes.push(node)
    // Two whole runs: the first timed out at 100 ms and ended at 600, then the next began.
    await vi.waitFor(() => expect(node.scheduleStats()[0]?.runs).toBeGreaterThanOrEqual(2), {
      timeout: 10_000,
      interval: 20,
    })
    const report = (await node.worker('clock').call('report')) as Report
    expect(report.maxActive).toBe(1)
    expect(node.scheduleStats()[0]?.failed).toBeGreaterThanOrEqual(1)
    expect(logs.lines.some((l) => String(l.msg).includes('timed out after 100 ms; the next runs wait'))).toBe(true)
    // Skips every 50 ms are a few lines, not one each.
    expect(logs.lines.filter((l) => String(l.msg).startsWith('skipped clock.slow')).length).toBeLessThanOrEqual(5)
  })

  it('refuses at start a schedule no run could serve: a worker the node lacks, a bad or misplaced time zone', async () => {
    const problems = [
      [{ worker: 'nobody', method: 'tick', every: 1000 }, 'key "schedules.0.worker": this node has no worker "nobody"'],
      [
        { worker: 'clock', method: 'tick', cron: '* * * * * *', timezone: 'Europe/Berln' },
        'key "schedules.0.timezone": unknown time zone "Europe/Berln"',
      ],
      [
        { worker: 'clock', method: 'tick', every: 1000, timezone: 'UTC' },
        'key "schedules.0.timezone": a time zone applies to cron, not to every',
      ],
      [{ worker: 'clock', method: 'tick', every: 2 ** 31 }, 'key "schedules.0.every": Too big'],
    ] as const
    for (const [schedule, message] of problems) {
      const started = startNode({ logLevel: 'silent', workers: { clock: { file: clock } }, schedules: [schedule] })
      await expect(started).rejects.toThrow(ConfigError)
      await expect(started).rejects.toThrow(message)
    }
  })

  it('rejects an invalid cron expression at start, naming the schedule', async () => {
    await expect(
      startNode({
        logLevel: 'silent',
        workers: { clock: { file: clock } },
        schedules: [{ worker: 'clock', method: 'tick', cron: 'every tuesday' }],
      }),
    ).rejects.toThrow(ConfigError)
  })
})
