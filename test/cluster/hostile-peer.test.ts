import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { connect } from 'node:net'
import type { NodeInfo } from '@wmesh/core'
import { MeshNode } from '@wmesh/mesh'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { Link } from '../../packages/mesh/src/link.js'
import { freePorts, meshFixtures, tempCluster } from '../support/node-process.js'

const silent = pino({ level: 'silent' })
const nodes: MeshNode[] = []
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()))
})

async function node(): Promise<{ node: MeshNode; port: number; secret: Buffer }> {
  const { secretFile } = tempCluster()
  const [port] = (await freePorts(1)) as [number]
  const n = new MeshNode(
    {
      name: 'n1',
      listen: `127.0.0.1:${port}`,
      mdns: false,
      secretFile,
      workers: { echo: { file: `${meshFixtures}echo-worker.mjs` } },
    },
    { logger: silent },
  )
  nodes.push(n)
  await n.start()
  return { node: n, port, secret: Buffer.from(readFileSync(secretFile, 'utf8').trim(), 'utf8') }
}

describe('an authenticated peer that lies about who it is', () => {
  it('cannot pass for a node of our name with an id holding two colons', async () => {
    const { node: n1, port, secret } = await node()
    const downs: NodeInfo[] = []
    n1.on('node:down', (info) => downs.push(info))
    const socket = connect({ host: '127.0.0.1', port })
    await once(socket, 'connect')
    const id = 'n1:zzzzzzzzzz:x'
    const link = await Link.establish(
      socket,
      { role: 'dialer', cluster: 'wmesh', secret, localId: id, localKind: 'node' },
      { logger: silent },
    )
    const closed = once(link, 'close')
    try {
      link.send({
        t: 'entry',
        entry: {
          id,
          name: 'n1',
          incarnation: 'zzzzzzzzzz:x',
          startedAt: 1,
          version: 'x',
          addresses: ['127.0.0.1'],
          port: 1,
          rev: 1,
          workers: [],
          services: [],
        },
      })
    } catch {
      // The node may have closed the link first.
    }
    await closed
    expect((await n1.nodes()).map((n) => n.id)).toEqual([n1.id])
    expect(downs).toEqual([])
    expect(await n1.worker('echo').call('echo', 'still here')).toBe('still here')
  })
})

describe('stop', () => {
  it('ends handshakes still under way instead of leaving them to their deadline', { timeout: 3000 }, async () => {
    const { node: n1, port } = await node()
    const socket = connect({ host: '127.0.0.1', port })
    await once(socket, 'connect')
    socket.write(Buffer.from([0]))
    socket.on('error', () => {})
    const closed = once(socket, 'close')
    await n1.stop()
    // Was ~5 s (the handshake deadline) after the stop returned.
    await closed
    expect(socket.destroyed).toBe(true)
  })
})
