import { setTimeout as delay } from 'node:timers/promises'
import { afterEach, describe, expect, it } from 'vitest'
import { eventually, type LoopbackCluster, loopbackCluster } from '../support/cluster.js'
import { meshFixtures } from '../support/node-process.js'

const echo = { file: `${meshFixtures}echo-worker.mjs` }
let cluster: LoopbackCluster | undefined
afterEach(async () => {
  await cluster?.stop()
  cluster = undefined
})

describe('client relink', () => {
  it('drops nodes that died while it was relinking', async () => {
    cluster = await loopbackCluster([{ echo }, { echo }, { echo }])
    const client = await cluster.client()
    await eventually(client, async () => (await client.nodes()).length === 3, 5000, 'three nodes')
    expect(client.linkedNode?.startsWith('n1:')).toBe(true)
    cluster.nodes[0]?.child.kill('SIGKILL') // the client's node
    cluster.nodes[2]?.child.kill('SIGKILL') // and another one
    await eventually(client, () => client.linkedNode?.startsWith('n2:'), 5000, 'relinked to n2')
    await delay(3000) // digests, heartbeats: well past convergence
    const n2view = (await client.worker('echo', { node: 'n2' }).call('view')) as { nodes: string[] }
    expect(n2view.nodes).toEqual(['n2'])
    expect((await client.nodes()).map((n) => n.name).sort()).toEqual(['n2'])
  })
})
