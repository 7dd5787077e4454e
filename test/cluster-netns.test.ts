import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLab, type Lab, requireRoot } from './lab/netns.js'
import {
  exampleWorkers,
  killAll,
  meshFixtures,
  type NodeProcess,
  startNodeProcess,
  tempCluster,
} from './support/node-process.js'
import { Probe, probeScript } from './support/probe.js'

// Three simulated hosts (network namespaces on one bridge) that find each other by mDNS
// alone: no seeds. mDNS runs only inside these namespaces (see TESTING.md).
describe('a cluster of three namespaced hosts, discovered by mDNS', () => {
  let lab: Lab
  const nodes: NodeProcess[] = []
  const { dir, secretFile } = tempCluster()
  const workers = [
    {
      echo: { file: `${meshFixtures}echo-worker.mjs` },
      server_worker: { file: `${exampleWorkers}server-worker.ts`, args: { host: '0.0.0.0', port: 0, intervalMs: 100 } },
    },
    {
      echo: { file: `${meshFixtures}echo-worker.mjs` },
      foo_worker: {
        file: `${exampleWorkers}foo-worker.ts`,
        args: { service: 'time' },
        restart: { initialDelay: 200, maxDelay: 1000 },
      },
    },
    { echo: { file: `${meshFixtures}echo-worker.mjs` }, typed: { file: `${meshFixtures}typed-worker.ts` } },
  ]

  const startHost = (i: number): NodeProcess => {
    const host = lab.hosts[i]
    if (!host) throw new Error(`no host ${i}`)
    const node = startNodeProcess(
      dir,
      {
        name: host.name,
        listen: `${host.ip}:7946`,
        mdns: true,
        interface: host.ip,
        secretFile,
        workers: workers[i],
      },
      ['ip', 'netns', 'exec', host.ns],
    )
    nodes[i] = node
    return node
  }

  let probe: Probe
  beforeAll(async () => {
    requireRoot()
    lab = await createLab({ hosts: 3 })
    for (let i = 0; i < lab.hosts.length; i++) startHost(i)
    await Promise.all(nodes.map((n) => n.waitFor((l) => String(l.msg).startsWith(`node ${n.name} running`), 'running')))
    const h1 = lab.hosts[0]
    if (!h1) throw new Error('no h1')
    // The client runs on h1 too and finds the cluster by mDNS.
    probe = new Probe(
      h1.exec(process.execPath, [probeScript, secretFile], {
        stdio: ['pipe', 'pipe', 'inherit'],
        env: { ...process.env, WMESH_INTERFACE: h1.ip },
      }),
    )
    await probe.waitFor((l) => l.event === 'ready', 20_000, 'the client to link')
  }, 60_000)

  afterAll(async () => {
    await killAll(nodes.filter(Boolean))
    await lab?.destroy()
  })

  it('every node sees every node, worker and service; a worker on h1 calls one on h3; h2 hears h1 through a service', async () => {
    const view = await probe.until(
      { op: 'call', worker: 'echo', method: 'view', node: 'all' },
      (l) =>
        l.ok === true &&
        (l.value as Array<{ ok: boolean; value?: { workers: string[]; nodes: string[] } }>).length === 3 &&
        (l.value as Array<{ ok: boolean; value?: { workers: string[] } }>).every(
          (o) => o.ok && o.value?.workers.length === 6,
        ),
      15_000,
      'three converged views',
    )
    for (const outcome of view.value as Array<{ value: { nodes: string[]; services: string[]; workers: string[] } }>) {
      expect(outcome.value.nodes).toEqual(['h1', 'h2', 'h3'])
      expect(outcome.value.services).toEqual(['time@h1'])
      expect(outcome.value.workers).toEqual([
        'echo@h1',
        'echo@h2',
        'echo@h3',
        'foo_worker@h2',
        'server_worker@h1',
        'typed@h3',
      ])
    }
    const relay = await probe.request({
      op: 'call',
      worker: 'echo',
      node: 'h1',
      method: 'relay',
      arg: { worker: 'typed', method: 'add', arg: { a: 1, b: 2 } },
    })
    expect(relay).toMatchObject({ ok: true, value: 3 })
    const services = await probe.request({ op: 'services' })
    const time = (services.value as Array<{ name: string; host: string }>)[0]
    expect(time?.host).toBe(lab.hosts[0]?.ip)
    const heard = await probe.until(
      { op: 'call', worker: 'foo_worker', method: 'greetings' },
      (l) => l.ok === true && (l.value as number) >= 3,
      15_000,
      'foo_worker on h2 to hear h1 three times',
    )
    expect(heard.value).toBeGreaterThanOrEqual(3)
  })

  it('a SIGKILLed host is marked down within 5 s and rejoins with a new incarnation', async () => {
    const h3 = nodes[2]
    if (!h3) throw new Error('no h3')
    const before = await probe.request({ op: 'nodes' })
    const oldId = (before.value as Array<{ name: string; id: string }>).find((n) => n.name === 'h3')?.id
    const killedAt = Date.now()
    h3.child.kill('SIGKILL')
    const down = await probe.waitFor(
      (l) => l.event === 'node:down' && l.name === 'h3' && (l.at as number) >= killedAt,
      6000,
      'h3 down',
    )
    expect((down.at as number) - killedAt).toBeLessThan(5000)
    await h3.exited
    startHost(2)
    const back = await probe.waitFor(
      (l) => l.event === 'node:up' && l.name === 'h3' && l.id !== oldId,
      15_000,
      'h3 back',
    )
    expect(back.id).not.toBe(oldId)
    const view = await probe.until(
      { op: 'call', worker: 'echo', method: 'view', node: 'all' },
      (l) =>
        l.ok === true &&
        (l.value as Array<{ ok: boolean; value?: { ids: string[] } }>).every((o) => o.ok && o.value?.ids.length === 3),
      5000,
      'views with the new h3',
    )
    for (const o of view.value as Array<{ value: { ids: string[] } }>) expect(o.value.ids).not.toContain(oldId)
  })

  it('a partitioned host is marked down, and both sides converge again after the heal', async () => {
    const h3 = lab.hosts[2]
    if (!h3) throw new Error('no h3')
    const partitionedAt = Date.now()
    await lab.partition(h3)
    const down = await probe.waitFor(
      (l) => l.event === 'node:down' && l.name === 'h3' && (l.at as number) >= partitionedAt,
      8000,
      'h3 down in the partition',
    )
    expect((down.at as number) - partitionedAt).toBeLessThan(5000)
    await lab.heal(h3)
    const view = await probe.until(
      { op: 'call', worker: 'echo', method: 'view', node: 'all' },
      (l) =>
        l.ok === true &&
        (l.value as Array<{ ok: boolean; value?: { nodes: string[] } }>).length === 3 &&
        (l.value as Array<{ ok: boolean; value?: { nodes: string[] } }>).every(
          (o) => o.ok && o.value?.nodes.length === 3,
        ),
      20_000,
      'views to converge after the heal',
    )
    for (const o of view.value as Array<{ value: { nodes: string[] } }>)
      expect(o.value.nodes).toEqual(['h1', 'h2', 'h3'])
  })
})
