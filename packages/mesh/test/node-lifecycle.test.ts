import { join } from 'node:path'
import { NodeStoppingError } from '@wmesh/core'
import { MeshNode } from '@wmesh/mesh'
import { pino } from 'pino'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { fixtures, startNode } from './helpers.js'

const slow = join(fixtures, 'slow-worker.mjs')
const nodes: MeshNode[] = []
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()))
})

/** Resolves once `node` lists worker `name` in `state` (no event marks 'starting': polled). */
async function untilState(node: MeshNode, name: string, state: string): Promise<void> {
  await vi.waitFor(
    async () => expect((await node.workers()).some((w) => w.name === name && w.state === state)).toBe(true),
    { timeout: 10_000, interval: 10 },
  )
}

describe('node and worker lifecycle races', () => {
  it('stop() during start() ends both: start rejects with NodeStoppingError, nothing keeps running', async () => {
    const node = new MeshNode(
      { name: 'racing', shutdownTimeout: 2000, workers: { slow: { file: slow, args: { createHangs: true } } } },
      { logger: pino({ level: 'silent' }) },
    )
    nodes.push(node)
    const started = node.start().catch((e: unknown) => e)
    await untilState(node, 'slow', 'starting')
    await node.stop()
    expect(await started).toBeInstanceOf(NodeStoppingError)
    expect((await node.workers()).map((w) => w.state)).toEqual(['stopped'])
    // A second stop is the same finished stop.
    await node.stop()
  })

  it('deleting a keyed instance still in create() settles its newWorker', async () => {
    const { node } = await startNode({ shutdownTimeout: 2000, workers: { slow: { file: slow } } })
    nodes.push(node)
    const created = node.newWorker('slow', { key: 'k', data: { createHangs: true } })
    await untilState(node, 'slow', 'starting')
    await node.worker('slow', { key: 'k' }).delete()
    expect(await created).toMatchObject({ key: 'k', state: 'stopped' })
  })

  it('a new instance with a deleted key keeps its own cache while the old one is still stopping', async () => {
    const { node } = await startNode({ shutdownTimeout: 2000, workers: { slow: { file: slow } } })
    nodes.push(node)
    await node.newWorker('slow', { key: 'r', data: { stopHangs: true } })
    const deleting = node.worker('slow', { key: 'r' }).delete()
    await node.newWorker('slow', { key: 'r' })
    await node.worker('slow', { key: 'r' }).call('remember', { key: 'a', value: 1 })
    await deleting
    expect(await node.worker('slow', { key: 'r' }).askResult('a')).toBe(1)
  })

  it('stop() keeps to shutdownTimeout even with a call stuck in a busy loop', async () => {
    const { node } = await startNode({ shutdownTimeout: 2000, workers: { slow: { file: slow } } })
    nodes.push(node)
    const stuck = node
      .worker('slow')
      .call('block', 20_000, { timeout: 30_000 })
      .catch((e: unknown) => e)
    const began = performance.now()
    await node.stop()
    const took = performance.now() - began
    expect(await stuck).toMatchObject({ code: 'ERR_WORKER_DOWN' })
    // Was 3 s: the workers got a second of their own after calls had used the whole budget.
    expect(took).toBeLessThan(2600)
  })
})
