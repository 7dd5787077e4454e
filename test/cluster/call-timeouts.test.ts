import { MeshNode } from '@wmesh/mesh'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { untilRunningOn } from '../support/cluster.js'
import { freePorts, meshFixtures, tempCluster } from '../support/node-process.js'

const echo = { file: `${meshFixtures}echo-worker.mjs` }
const nodes: MeshNode[] = []
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()))
})

describe('a call to another node with a timeout that is not whole milliseconds', () => {
  it('is answered: the timeout crosses the wire rounded up, not refused as malformed', async () => {
    const { secretFile } = tempCluster()
    const [pa, pb] = await freePorts(2)
    const base = { mdns: false, secretFile, logLevel: 'warn' as const, directCalls: false }
    const logger = pino({ level: 'silent' })
    const a = new MeshNode({ ...base, name: 'a', listen: `127.0.0.1:${pa}`, join: [`127.0.0.1:${pb}`] }, { logger })
    const b = new MeshNode({ ...base, name: 'b', listen: `127.0.0.1:${pb}`, workers: { echo } }, { logger })
    nodes.push(a, b)
    await Promise.all([a.start(), b.start()])
    await untilRunningOn(a, 'b', 'echo')
    expect(await a.worker('echo').call('echo', 'whole', { timeout: 5000.5 })).toBe('whole')
    expect(await a.worker('echo').call('echo', 'huge', { timeout: Number.MAX_SAFE_INTEGER })).toBe('huge')
  })
})
