import { setTimeout as delay } from 'node:timers/promises'
import { type CallOutcome, NodeDownError, NoSuchWorkerError } from '@wmesh/core'
import { afterEach, describe, expect, it } from 'vitest'
import { eventually, type LoopbackCluster, loopbackCluster } from './support/cluster.js'
import { exampleWorkers, meshFixtures, startNodeProcess, tempCluster } from './support/node-process.js'

const echo = { file: `${meshFixtures}echo-worker.mjs` }
const typed = { file: `${meshFixtures}typed-worker.ts` }
const timeServer = {
  file: `${exampleWorkers}server-worker.ts`,
  args: { host: '127.0.0.1', port: 0, intervalMs: 50 },
}
const foo = {
  file: `${exampleWorkers}foo-worker.ts`,
  args: { service: 'time' },
  restart: { initialDelay: 100, maxDelay: 500 },
}

let cluster: LoopbackCluster | undefined
afterEach(async () => {
  await cluster?.stop()
  cluster = undefined
})

interface View {
  nodes: string[]
  ids: string[]
  services: string[]
  workers: string[]
}

describe('a cluster on loopback, joined by seeds', () => {
  it('every node sees every node, worker and service; calls and services cross nodes', async () => {
    cluster = await loopbackCluster([
      { echo, server_worker: timeServer },
      { echo, foo_worker: foo },
      { echo, typed },
    ])
    const client = await cluster.client()
    const expected: View = {
      nodes: ['n1', 'n2', 'n3'],
      ids: [],
      services: ['time@n1'],
      workers: ['echo@n1', 'echo@n2', 'echo@n3', 'foo_worker@n2', 'server_worker@n1', 'typed@n3'],
    }
    // Each node's own view, asked of a worker on each node at once.
    const views = await eventually(
      client,
      async () => {
        const outcomes = (await client.worker('echo', { node: 'all' }).call('view')) as CallOutcome<View>[]
        const ok =
          outcomes.length === 3 && outcomes.every((o) => o.ok && o.value.workers.join() === expected.workers.join())
        return ok ? outcomes : undefined
      },
      5000,
      'all three views to converge',
    )
    for (const outcome of views) {
      expect(outcome.ok).toBe(true)
      if (!outcome.ok) continue
      expect(outcome.value).toMatchObject({
        nodes: expected.nodes,
        services: expected.services,
        workers: expected.workers,
      })
      expect(new Set(outcome.value.ids).size).toBe(3)
    }
    expect((await client.nodes()).map((n) => n.name).sort()).toEqual(['n1', 'n2', 'n3'])
    // A worker on n1 calls a worker that only runs on n3.
    expect(
      await client
        .worker('echo', { node: 'n1' })
        .call('relay', { worker: 'typed', method: 'add', arg: { a: 40, b: 2 } }),
    ).toBe(42)
    // FooWorker on n2 found "time" (published on n1) through the registry and hears it.
    const heard = await eventually(
      client,
      async () => {
        const n = (await client.worker('foo_worker').call('greetings')) as number
        return n >= 3 ? n : undefined
      },
      10_000,
      'foo_worker to hear three greetings',
    )
    expect(heard).toBeGreaterThanOrEqual(3)
    // A method's own error code and stack survive the hops client -> node -> node -> thread.
    await expect(client.worker('echo', { node: 'n3' }).call('fail', 'it broke')).rejects.toMatchObject({
      code: 'ERR_REMOTE',
      remoteCode: 'E_CUSTOM',
      message: 'it broke',
    })
    const [service] = await client.services()
    expect(service).toMatchObject({ name: 'time', node: 'n1', host: '127.0.0.1', codec: 'raw' })
  })

  it('marks a SIGKILLed node down everywhere within 5 s, fails its calls in flight with NodeDownError, and takes it back', async () => {
    cluster = await loopbackCluster([{ echo }, { echo }, { echo }])
    const client = await cluster.client()
    await eventually(client, async () => (await client.workers()).length === 3, 5000, 'three echo workers')
    const n3 = cluster.nodes[2]
    if (!n3) throw new Error('no n3')
    const down = new Promise<number>((resolve) =>
      client.on('node:down', (node) => {
        if (node.name === 'n3') resolve(Date.now())
      }),
    )
    const inFlight = client
      .worker('echo', { node: 'n3' })
      .call('sleep', 20_000, { timeout: 30_000 })
      .catch((e: unknown) => e)
    const killedAt = Date.now()
    n3.child.kill('SIGKILL')
    const error = await inFlight
    expect(error).toBeInstanceOf(NodeDownError)
    expect(Date.now() - killedAt).toBeLessThan(5000)
    expect((await down) - killedAt).toBeLessThan(5000)
    expect((await client.workers()).map((w) => w.node).sort()).toEqual(['n1', 'n2'])
    // Both survivors dropped n3 and its workers from their own views.
    const survivors = await eventually(
      client,
      async () => {
        const all = (await client.worker('echo', { node: 'all' }).call('view')) as CallOutcome<View>[]
        return all.length === 2 && all.every((o) => o.ok && o.value.nodes.join() === 'n1,n2') ? all : undefined
      },
      5000 - (Date.now() - killedAt),
      'n1 and n2 to drop n3',
    )
    for (const o of survivors) if (o.ok) expect(o.value.workers).toEqual(['echo@n1', 'echo@n2'])
    // Later calls go to the instances that remain.
    for (let i = 0; i < 4; i++) expect(await client.worker('echo').call('echo', i)).toBe(i)
    await expect(client.worker('echo', { node: 'n3' }).call('echo', 1)).rejects.toBeInstanceOf(NodeDownError)
    // Restarted, it rejoins with a new incarnation and every view converges within 2 s.
    const before = (await client.nodes()).map((n) => n.id)
    const restarted = cluster.start(2)
    await restarted.waitFor((l) => String(l.msg).startsWith('node n3 running'), 'n3 running again')
    const rejoinedAt = Date.now()
    const outcomes = await eventually(
      client,
      async () => {
        const all = (await client.worker('echo', { node: 'all' }).call('view')) as CallOutcome<View>[]
        return all.length === 3 && all.every((o) => o.ok && o.value.workers.length === 3 && o.value.nodes.length === 3)
          ? all
          : undefined
      },
      5000,
      'views with n3 again',
    )
    expect(Date.now() - rejoinedAt).toBeLessThan(2000 + 500)
    const n3id = (await client.nodes()).find((n) => n.name === 'n3')?.id
    expect(before).not.toContain(n3id)
    for (const o of outcomes) if (o.ok) expect(o.value.nodes).toEqual(['n1', 'n2', 'n3'])
  })

  it('marks a node paused with SIGSTOP for 10 s down, and back after SIGCONT, never listing it twice', async () => {
    cluster = await loopbackCluster([{ echo }, { echo }, { echo }])
    const client = await cluster.client()
    await eventually(client, async () => (await client.nodes()).length === 3, 5000, 'three nodes')
    const n3 = cluster.nodes[2]
    if (!n3) throw new Error('no n3')
    const down = new Promise<void>((resolve) => client.on('node:down', (n) => n.name === 'n3' && resolve()))
    const stoppedAt = Date.now()
    n3.child.kill('SIGSTOP')
    await down
    expect(Date.now() - stoppedAt).toBeLessThan(5000)
    await delay(Math.max(0, 10_000 - (Date.now() - stoppedAt)))
    n3.child.kill('SIGCONT')
    await eventually(client, async () => (await client.nodes()).some((n) => n.name === 'n3'), 10_000, 'n3 back')
    const outcomes = await eventually(
      client,
      async () => {
        const all = (await client.worker('echo', { node: 'all' }).call('view')) as CallOutcome<View>[]
        return all.length === 3 && all.every((o) => o.ok && o.value.nodes.length === 3) ? all : undefined
      },
      10_000,
      'all views with three nodes',
    )
    for (const o of outcomes) if (o.ok) expect(o.value.ids).toHaveLength(3)
  })

  it('does not mark down a node whose worker is busy for 3 s', async () => {
    cluster = await loopbackCluster([{ echo }, { echo }])
    const client = await cluster.client()
    await eventually(client, async () => (await client.nodes()).length === 2, 5000, 'two nodes')
    const downs: string[] = []
    client.on('node:down', (n) => downs.push(n.name))
    const linked = client.linkedNode?.split(':')[0]
    const other = linked === 'n1' ? 'n2' : 'n1'
    expect(await client.worker('echo', { node: other }).call('block', 3000, { timeout: 10_000 })).toBe(3000)
    // The other node's own heartbeats kept flowing while its worker thread was blocked.
    expect(downs).toEqual([])
    expect((await client.nodes()).length).toBe(2)
  })

  it('refuses a node with the wrong secret or of another cluster, and they change no registry', async () => {
    cluster = await loopbackCluster([{ echo }, { echo }])
    const client = await cluster.client()
    await eventually(client, async () => (await client.nodes()).length === 2, 5000, 'two nodes')
    const intruders = [
      startNodeProcess(tempCluster().dir, {
        name: 'wrong-secret',
        listen: '127.0.0.1:0',
        join: cluster.seeds,
        mdns: false,
        secretFile: tempCluster().secretFile,
        workers: { echo },
      }),
      startNodeProcess(cluster.dir, {
        name: 'other-cluster',
        cluster: 'other',
        listen: '127.0.0.1:0',
        join: cluster.seeds,
        mdns: false,
        secretFile: cluster.secretFile,
        workers: { echo },
      }),
    ]
    try {
      const n1 = cluster.nodes[0]
      if (!n1) throw new Error('no n1')
      await n1.waitFor(
        (l) => /link handshake with .* failed/.test(String(l.msg)) && l.code === 'ERR_AUTH',
        'refusal of the wrong secret',
      )
      await n1.waitFor(
        (l) => /link handshake with .* failed/.test(String(l.msg)) && /cluster/i.test(String(l.msg)),
        'refusal of the other cluster',
      )
      expect((await client.nodes()).map((n) => n.name).sort()).toEqual(['n1', 'n2'])
      await expect(client.worker('echo', { node: 'wrong-secret' }).call('echo', 1)).rejects.toBeInstanceOf(
        NodeDownError,
      )
    } finally {
      for (const n of intruders) n.child.kill('SIGKILL')
      await Promise.all(intruders.map((n) => n.exited))
    }
  })

  it('gives a client NoSuchWorkerError for a worker that runs nowhere', async () => {
    cluster = await loopbackCluster([{ echo }])
    const client = await cluster.client()
    await expect(client.worker('nobody').call('x')).rejects.toBeInstanceOf(NoSuchWorkerError)
  })
})
