import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { MeshNode } from '@wmesh/mesh'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { Link } from '../../packages/mesh/dist/link.js'
import { Registry } from '../../packages/mesh/dist/registry.js'
import { eventually, type LoopbackCluster, loopbackCluster, untilRunningOn } from '../support/cluster.js'
import { freePorts, meshFixtures, tempCluster } from '../support/node-process.js'

const echo = { file: `${meshFixtures}echo-worker.mjs` }
let cluster: LoopbackCluster | undefined
const nodes: MeshNode[] = []
afterEach(async () => {
  await cluster?.stop()
  cluster = undefined
  await Promise.all(nodes.splice(0).map((n) => n.stop()))
})
const entry = (rev: number) => ({
  id: 'x:0000000001-aaaaaa',
  name: 'x',
  incarnation: '0000000001-aaaaaa',
  startedAt: 1,
  version: '1',
  addresses: [],
  port: 1,
  rev,
  workers: [],
  services: [],
})

describe('cluster invariants', () => {
  it('registry refuses a lower rev', () => {
    const r = new Registry()
    expect(r.apply(entry(2))).toBe(true)
    expect(r.apply(entry(1))).toBe(false)
    expect(r.get('x:0000000001-aaaaaa')?.rev).toBe(2)
  })

  it('a node sends its digest every second', async () => {
    cluster = await loopbackCluster([{ echo }])
    const secret = Buffer.from(readFileSync(cluster.secretFile, 'utf8').trim(), 'utf8')
    const socket = connect({ host: '127.0.0.1', port: cluster.ports[0] as number })
    await once(socket, 'connect')
    const link = await Link.establish(
      socket,
      { role: 'dialer', cluster: 'wmesh', secret, localId: 'peer:0000000001-abcdef', localKind: 'node' },
      { logger: pino({ level: 'silent' }) },
    )
    const digest = await new Promise<unknown>((resolve) => {
      link.on('message', (m) => (m as { t: string }).t === 'digest' && resolve(m))
      setTimeout(() => resolve(undefined), 2500)
    })
    link.destroy()
    expect(digest).toMatchObject({ t: 'digest', id: expect.stringMatching(/^n1:/) })
  })

  it('a node runs a call on its own instance first', async () => {
    const { secretFile } = tempCluster()
    const [pa, pb] = await freePorts(2)
    const base = { mdns: false, secretFile, logLevel: 'warn' as const }
    const logger = pino({ level: 'silent' })
    const a = new MeshNode(
      {
        ...base,
        name: 'a',
        listen: `127.0.0.1:${pa}`,
        join: [`127.0.0.1:${pb}`],
        workers: { echo: { ...echo, args: 'a' } },
      },
      { logger },
    )
    const b = new MeshNode(
      { ...base, name: 'b', listen: `127.0.0.1:${pb}`, workers: { echo: { ...echo, args: 'b' } } },
      { logger },
    )
    nodes.push(a, b)
    await Promise.all([a.start(), b.start()])
    await untilRunningOn(a, 'b', 'echo')
    for (let i = 0; i < 4; i++) expect(((await a.worker('echo').call('whoami')) as { args: string }).args).toBe('a')
  })

  it('a client relinks when its node dies', async () => {
    cluster = await loopbackCluster([{ echo }, { echo }])
    const client = await cluster.client()
    expect(client.linkedNode?.startsWith('n1:')).toBe(true)
    cluster.nodes[0]?.child.kill('SIGKILL')
    await eventually(client, async () => (await client.worker('echo').call('echo', 7)) === 7, 5000, 'a call via n2')
    expect(client.linkedNode?.startsWith('n2:')).toBe(true)
  })
})
