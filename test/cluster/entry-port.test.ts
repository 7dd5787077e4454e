import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
// Link is not exported from the package index; use the built module directly.
import { Link } from '../../packages/mesh/dist/link.js'
import { type LoopbackCluster, loopbackCluster } from '../support/cluster.js'
import { meshFixtures, type NodeProcess } from '../support/node-process.js'

const echo = { file: `${meshFixtures}echo-worker.mjs` }
let cluster: LoopbackCluster | undefined
afterEach(async () => {
  await cluster?.stop()
  cluster = undefined
})

describe('entries from an authenticated peer', () => {
  it('an out-of-range port in a peer entry must not crash the node', async () => {
    cluster = await loopbackCluster([{ echo }])
    const secret = Buffer.from(readFileSync(cluster.secretFile, 'utf8').trim(), 'utf8')
    const socket = connect({ host: '127.0.0.1', port: cluster.ports[0] as number })
    await once(socket, 'connect')
    const id = 'peer:0000000001-abcdef'
    const link = await Link.establish(
      socket,
      { role: 'dialer', cluster: 'wmesh', secret, localId: id, localKind: 'node' },
      { logger: pino({ level: 'silent' }) },
    )
    link.send({
      t: 'entry',
      entry: {
        id,
        name: 'peer',
        incarnation: '0000000001-abcdef',
        startedAt: 1,
        version: 'x',
        addresses: ['127.0.0.1'],
        port: 70000,
        rev: 1,
        workers: [],
        services: [],
      },
    })
    await new Promise((r) => setTimeout(r, 200))
    link.destroy() // looks like a crash: n1 puts 127.0.0.1:70000 in #lost and redials it every second
    const n1 = cluster.nodes[0] as NodeProcess
    const exit = await Promise.race([n1.exited, new Promise((r) => setTimeout(() => r('alive'), 2500))])
    expect(n1.stderr()).not.toMatch(/ERR_SOCKET_BAD_PORT/)
    expect(exit).toBe('alive')
  })
})
