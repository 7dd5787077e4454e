import { execFileSync } from 'node:child_process'
import { RemoteError } from '@wmesh/core'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { type LoopbackCluster, loopbackCluster, untilRunningOn } from '../support/cluster.js'
import { meshFixtures } from '../support/node-process.js'

const echo = { file: `${meshFixtures}echo-worker.mjs` }
let cluster: LoopbackCluster | undefined
afterEach(async () => {
  await cluster?.stop()
  cluster = undefined
})

/** Established TCP connections whose local port is `port` (the callee's side), from `ss`. */
function connectionsTo(port: number): number {
  const out = execFileSync('ss', ['-Htn', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' })
  return out.split('\n').filter((l) => l.trim()).length
}

describe('direct calls: a worker calling a worker of another node', () => {
  it('goes straight to the callee thread, with correct results for every call', async () => {
    cluster = await loopbackCluster([{ front: echo }, { echo }])
    const client = await cluster.client()
    await untilRunningOn(client, 'n2', 'echo')
    await untilRunningOn(client, 'n1', 'front')
    const callee = (await client.workers()).find((w) => w.name === 'echo')
    expect(callee?.direct).toBeGreaterThan(0)
    // The first call may go through the nodes while the direct link comes up.
    await client.worker('front').call('relay', { worker: 'echo', method: 'echo', arg: 0 })
    const values = Array.from({ length: 300 }, (_, i) => ({ i, s: 'x'.repeat(i % 50) }))
    const results = await Promise.all(
      values.map((arg) => client.worker('front').call('relay', { worker: 'echo', method: 'echo', arg })),
    )
    expect(results).toEqual(values)
    expect(connectionsTo(callee?.direct as number)).toBe(1)
  })

  it('fails a call whose callee thread crashes with WorkerDownError, then reaches the restarted thread', async () => {
    cluster = await loopbackCluster([{ front: echo }, { echo }])
    const client = await cluster.client()
    await untilRunningOn(client, 'n2', 'echo')
    await client.worker('front').call('relay', { worker: 'echo', method: 'echo', arg: 1 })
    const crashed = await client
      .worker('front')
      .call('relay', { worker: 'echo', method: 'crash', timeout: 5000 })
      .catch((e: unknown) => e)
    expect(crashed).toBeInstanceOf(RemoteError)
    expect((crashed as RemoteError).remoteCode).toBe('ERR_WORKER_DOWN')
    await cluster.nodes[1]?.waitFor((l) => l.msg === 'worker running' && Number(l.restarts) === 1, 'restart')
    await untilRunningOn(client, 'n2', 'echo')
    const after = await client.worker('front').call('relay', { worker: 'echo', method: 'echo', arg: 'again' })
    expect(after).toBe('again')
  })

  it('answers every call in flight when the callee node stops gracefully', async () => {
    cluster = await loopbackCluster([{ front: echo }, { echo }])
    const client = await cluster.client()
    await untilRunningOn(client, 'n2', 'echo')
    await client.worker('front').call('relay', { worker: 'echo', method: 'echo', arg: 1 })
    const inFlight = Array.from({ length: 20 }, () =>
      client
        .worker('front')
        .call('relay', { worker: 'echo', method: 'sleep', arg: 400, timeout: 5000 })
        .catch((e: unknown) => e),
    )
    // Once the callee has every call, ask its node to stop.
    await vi.waitFor(async () => expect(await client.worker('echo').call('sleepers')).toBe(20), {
      timeout: 5000,
      interval: 10,
    })
    cluster.nodes[1]?.child.kill('SIGTERM')
    expect(await Promise.all(inFlight)).toEqual(Array.from({ length: 20 }, () => 400))
    expect(await cluster.nodes[1]?.exited).toBe(0)
  })

  it('lets a callee compute past the heartbeat timeout: a busy worker is not a dead node', async () => {
    cluster = await loopbackCluster([{ front: echo }, { echo }])
    const client = await cluster.client()
    await untilRunningOn(client, 'n2', 'echo')
    await client.worker('front').call('relay', { worker: 'echo', method: 'echo', arg: 1 })
    // block() holds the callee thread's event loop for 4 s, past heartbeatTimeout (3 s).
    const value = await client
      .worker('front')
      .call('relay', { worker: 'echo', method: 'block', arg: 4000, timeout: 10_000 }, { timeout: 15_000 })
    expect(value).toBe(4000)
  }, 30_000)

  it('fails a call whose callee node is killed with NodeDownError, as through the nodes', async () => {
    cluster = await loopbackCluster([{ front: echo }, { echo }])
    const client = await cluster.client()
    await untilRunningOn(client, 'n2', 'echo')
    await client.worker('front').call('relay', { worker: 'echo', method: 'echo', arg: 1 })
    const inFlight = client
      .worker('front')
      .call('relay', { worker: 'echo', method: 'sleep', arg: 3000, timeout: 5000 })
      .catch((e: unknown) => e)
    await vi.waitFor(async () => expect(await client.worker('echo').call('sleepers')).toBe(1), {
      timeout: 5000,
      interval: 10,
    })
    cluster.nodes[1]?.child.kill('SIGKILL')
    const error = await inFlight
    expect(error).toBeInstanceOf(RemoteError)
    expect((error as RemoteError).remoteCode).toBe('ERR_NODE_DOWN')
  })

  it('can be turned off: calls then go through the nodes and no worker listens', async () => {
    cluster = await loopbackCluster([{ front: echo }, { echo }], { directCalls: false })
    const client = await cluster.client()
    await untilRunningOn(client, 'n2', 'echo')
    expect((await client.workers()).every((w) => w.direct === undefined)).toBe(true)
    const value = await client.worker('front').call('relay', { worker: 'echo', method: 'echo', arg: 'via nodes' })
    expect(value).toBe('via nodes')
  })
})
