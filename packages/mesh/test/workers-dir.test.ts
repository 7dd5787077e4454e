import { join } from 'node:path'
import type { MeshNode } from '@wmesh/mesh'
import { afterEach, describe, expect, it } from 'vitest'
import { fixtures, startNode } from './helpers.js'

const nodes: MeshNode[] = []
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()))
})

describe('workersDir', () => {
  it('runs each module as the worker it names, with the instances and restart policy configured for that name', async () => {
    const policy = { initialDelay: 123, maxDelay: 1000, resetAfter: 30_000 }
    const { node, logs } = await startNode({
      workersDir: join(fixtures, '..', 'workers-dir'),
      workers: { echo: { instances: 2, restart: policy } },
    })
    nodes.push(node)
    const running = await node.workers()
    expect(running.map((w) => `${w.name}#${w.instance}:${w.state}`).sort()).toEqual([
      'echo#0:running',
      'echo#1:running',
    ])
    // Crash each instance, the first one (loaded before its name was known) included.
    for (let i = 0; i < 2; i++) {
      const crashed = node
        .worker('echo')
        .call('crash')
        .catch((e: unknown) => e)
      expect(await crashed).toMatchObject({ code: 'ERR_WORKER_DOWN' })
    }
    const crashes = logs.lines.filter((l) => String(l.msg).startsWith('worker crashed'))
    expect(crashes.map((l) => [l.worker, l.nextRestartMs]).sort()).toEqual([
      ['echo#0', 123],
      ['echo#1', 123],
    ])
  })
})
