import { afterEach, describe, expect, it } from 'vitest'
import {
  killAll,
  meshFixtures,
  type NodeProcess,
  startNodeProcess,
  tempCluster,
  testFixtures,
} from './support/node-process.js'

const nodes: NodeProcess[] = []

afterEach(async () => {
  await killAll(nodes.splice(0))
})

describe('wmesh start: graceful shutdown', () => {
  it('on SIGTERM during a stream of calls exits 0 within its deadline, with every call answered or failed', async () => {
    const { dir } = tempCluster()
    const node = startNodeProcess(dir, {
      name: 'shutdown',
      logLevel: 'info',
      shutdownTimeout: 5000,
      workers: {
        echo: { file: `${meshFixtures}echo-worker.mjs`, instances: 2 },
        caller: { file: `${testFixtures}caller-worker.mjs`, args: { concurrency: 4 } },
      },
    })
    nodes.push(node)
    await node.waitFor((l) => l.msg === 'calls flowing')
    const signalled = Date.now()
    node.child.kill('SIGTERM')
    const code = await node.exited
    expect(code).toBe(0)
    expect(Date.now() - signalled).toBeLessThan(5000 + 2000)
    const summary = node.lines.find((l) => l.msg === 'caller summary') as {
      started: number
      ok: number
      failed: Record<string, number>
      pending: number
    }
    expect(summary).toBeDefined()
    expect(summary.pending).toBe(0)
    const failed = Object.values(summary.failed).reduce((a, b) => a + b, 0)
    expect(summary.ok + failed).toBe(summary.started)
    expect(summary.ok).toBeGreaterThanOrEqual(50)
    // The only failures are calls refused because the node was stopping.
    expect(Object.keys(summary.failed).every((code) => code === 'ERR_NODE_STOPPING')).toBe(true)
    expect(node.lines.some((l) => l.msg === 'node shutdown stopped')).toBe(true)
  })
})
