import { NodeDownError } from '@wmesh/core'
import { MeshNode } from '@wmesh/mesh'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { type LoopbackCluster, loopbackCluster, untilRunningOn } from '../support/cluster.js'
import { freePorts, meshFixtures, tempCluster } from '../support/node-process.js'

const echo = { file: `${meshFixtures}echo-worker.mjs` }
let cluster: LoopbackCluster | undefined
const nodes: MeshNode[] = []
afterEach(async () => {
  await cluster?.stop()
  cluster = undefined
  await Promise.all(nodes.splice(0).map((n) => n.stop()))
})

describe('a cast that cannot be routed', () => {
  it('from a client is dropped without touching the link or the other calls of the client', async () => {
    cluster = await loopbackCluster([{ echo }])
    const client = await cluster.client()
    const linked = client.linkedNode
    const inFlight = client
      .worker('echo')
      .call('sleep', 1000)
      .catch((e: unknown) => e)
    await client.worker('nobody').cast('x') // #serveCall -> #cast -> #route throws synchronously
    const result = await inFlight
    expect(result).toBe(1000)
    expect(cluster.nodes[0]?.lines.some((l) => /a 'message' listener threw/.test(String(l.msg)))).toBe(false)
    expect(linked).toBeDefined()
  })

  it('from a peer while the target stops does not break the link: calls in flight are still answered', async () => {
    const { secretFile } = tempCluster()
    const [pa, pb] = await freePorts(2)
    const base = { mdns: false, secretFile, logLevel: 'warn' as const, heartbeatInterval: 200, heartbeatTimeout: 1000 }
    const logger = pino({ level: 'silent' })
    const a = new MeshNode({ ...base, name: 'a', listen: `127.0.0.1:${pa}`, join: [`127.0.0.1:${pb}`] }, { logger })
    const b = new MeshNode(
      { ...base, name: 'b', listen: `127.0.0.1:${pb}`, join: [`127.0.0.1:${pa}`], workers: { echo } },
      { logger },
    )
    nodes.push(a, b)
    await Promise.all([a.start(), b.start()])
    await untilRunningOn(a, 'b', 'echo')
    const inFlight = a
      .worker('echo')
      .call('sleep', 800)
      .catch((e: unknown) => e)
    await new Promise((r) => setTimeout(r, 100))
    const stopping = b.stop() // b waits for calls in flight...
    await a.worker('echo').cast('echo', 1) // ...but a's view is still stale, so this cast reaches b
    const result = await inFlight
    await stopping
    expect(result).not.toBeInstanceOf(NodeDownError)
    expect(result).toBe(800)
  })
})
