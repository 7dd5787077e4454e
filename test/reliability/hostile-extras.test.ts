import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fdCount } from '../lab/faults.js'
import { createLab, type Lab, requireRoot } from '../lab/netns.js'
import { eventually, type LoopbackCluster, loopbackCluster } from '../support/cluster.js'
import { killAll, type NodeProcess, startNodeProcess, tempCluster } from '../support/node-process.js'
import { echo, hold } from './lab-cluster.js'

// Scenario 5, the hostile inputs test/cluster-hostile.test.ts does not cover yet: a flood of
// idle connections at a link port, and an mDNS advert from another cluster.
const FLOOD = Number(process.env.WMESH_FLOOD_SOCKETS ?? 400)
const SAMPLES = 200

async function latencies(call: () => Promise<unknown>, n: number): Promise<{ p50: number; p99: number }> {
  const times: number[] = []
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await call()
    times.push(performance.now() - t0)
  }
  times.sort((a, b) => a - b)
  const at = (q: number) =>
    Math.round((times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? 0) * 100) / 100
  return { p50: at(0.5), p99: at(0.99) }
}

describe('scenario 5: a flood of idle connections at a link port', () => {
  let cluster: LoopbackCluster

  beforeAll(async () => {
    cluster = await loopbackCluster([{ echo }, { echo }])
  }, 30_000)

  afterAll(async () => {
    await cluster?.stop()
  })

  it(`keeps healthy calls fast under ${FLOOD} idle sockets, closes them at the handshake deadline, and ends with as many fds as before`, async () => {
    const client = await cluster.client()
    const n1 = cluster.nodes[0]
    const pid = n1?.child.pid
    if (!n1 || !pid) throw new Error('no n1')
    const call = () => client.worker('echo', { node: 'n1' }).call('echo', 'x')
    await eventually(client, () => call().then(() => true), 5000, 'n1 callable')
    const baselineFds = await fdCount(pid)
    const before = await latencies(call, SAMPLES)

    const sockets: Socket[] = []
    const openedAt = Date.now()
    try {
      for (let i = 0; i < FLOOD; i++) {
        const socket = connect({ host: '127.0.0.1', port: cluster.ports[0] as number })
        socket.on('error', () => {})
        sockets.push(socket)
      }
      await Promise.all(sockets.map((s) => once(s, 'connect')))
      // The kernel completes connects into the backlog; the node accepts them a moment later.
      let floodFds = await fdCount(pid)
      for (let i = 0; i < 30 && floodFds < baselineFds + FLOOD * 0.9; i++) {
        await hold(50)
        floodFds = await fdCount(pid)
      }
      const during = await latencies(call, SAMPLES)
      // The node ends each idle connection at the 5 s handshake deadline.
      await Promise.all(sockets.map((s) => (s.closed ? undefined : once(s, 'close'))))
      const closedAfter = Date.now() - openedAt
      // fds are released shortly after the closes: poll /proc for a bounded time.
      let afterFds = await fdCount(pid)
      for (let i = 0; i < 50 && afterFds > baselineFds; i++) {
        await hold(100)
        afterFds = await fdCount(pid)
      }
      const after = await latencies(call, SAMPLES)
      const refusals = n1.lines.filter((l) => l.code === 'ERR_HANDSHAKE_TIMEOUT' && Number(l.time) >= openedAt).length
      console.log(
        `[scenario 5 flood] sockets=${FLOOD} fds n1 baseline=${baselineFds} flooded=${floodFds} after=${afterFds}; ` +
          `all closed by n1 after ${closedAfter}ms; handshake-timeout log lines=${refusals}; ` +
          `call latency ms p50/p99 before=${before.p50}/${before.p99} during=${during.p50}/${during.p99} ` +
          `after=${after.p50}/${after.p99}`,
      )
      expect(floodFds).toBeGreaterThanOrEqual(baselineFds + FLOOD * 0.9)
      expect(closedAfter).toBeLessThan(9000)
      expect(afterFds).toBeLessThanOrEqual(baselineFds)
      // Healthy calls keep their latency (generous bounds for a shared 2-core machine).
      expect(during.p50).toBeLessThan(Math.max(5 * before.p50, before.p50 + 5))
      expect(during.p99).toBeLessThan(Math.max(10 * before.p99, 50))
      // One log line per refused connection, never more.
      expect(refusals).toBeLessThanOrEqual(FLOOD)
    } finally {
      for (const s of sockets) s.destroy()
    }
  }, 40_000)
})

describe('scenario 5: an mDNS advert from another cluster (in lab namespaces)', () => {
  let lab: Lab
  const nodes: NodeProcess[] = []

  beforeAll(async () => {
    requireRoot()
    lab = await createLab({ hosts: 3 })
  }, 30_000)

  afterAll(async () => {
    await killAll(nodes)
    await lab?.destroy()
  })

  it('never dials or lists a node of another cluster, while it does find its own cluster by mDNS', async () => {
    const [h1, h2, h3] = lab.hosts
    if (!h1 || !h2 || !h3) throw new Error('three hosts expected')
    const ours = tempCluster()
    const theirs = tempCluster()
    const start = (host: typeof h1, cluster: string, secretFile: string, dir: string) => {
      const node = startNodeProcess(
        dir,
        {
          name: host.name,
          cluster,
          listen: `${host.ip}:7946`,
          mdns: true,
          interface: host.ip,
          secretFile,
          workers: { echo },
        },
        ['ip', 'netns', 'exec', host.ns],
      )
      nodes.push(node)
      return node
    }
    // The stranger starts first, so its advert is out before our nodes browse.
    const stranger = start(h2, 'other', theirs.secretFile, theirs.dir)
    await stranger.waitFor((l) => String(l.msg).startsWith('node h2 running'), 'the stranger running')
    const a = start(h1, 'wmesh', ours.secretFile, ours.dir)
    const b = start(h3, 'wmesh', ours.secretFile, ours.dir)
    // Our two nodes find each other by mDNS: proof that adverts are being heard.
    await a.waitFor((l) => /^linked with h3:/.test(String(l.msg)), 'h1 linked with h3 by mDNS')
    await b.waitFor((l) => /^linked with h1:/.test(String(l.msg)), 'h3 linked with h1 by mDNS')
    // Each side sees the other cluster's adverts, and says once that it ignores them.
    const ignoring = (cluster: string) => (l: Record<string, unknown>) =>
      String(l.msg).startsWith(`mDNS: ignoring a node of cluster "${cluster}"`)
    await a.waitFor(ignoring('other'), 'h1 ignoring the stranger')
    await b.waitFor(ignoring('other'), 'h3 ignoring the stranger')
    await stranger.waitFor(ignoring('wmesh'), 'the stranger ignoring us')
    const aboutStranger = (n: NodeProcess) =>
      n.lines.filter((l) => JSON.stringify(l).includes(h2.ip) || String(l.peer ?? '').startsWith('h2:'))
    const strangerAboutUs = stranger.lines.filter(
      (l) => JSON.stringify(l).includes(h1.ip) || JSON.stringify(l).includes(h3.ip),
    )
    console.log(
      `[scenario 5 other cluster] lines about the stranger: h1=${aboutStranger(a).length} h3=${aboutStranger(b).length}; ` +
        `stranger lines about us=${strangerAboutUs.length}`,
    )
    // One line each, the notice; never a dial, a link or a listing.
    expect(aboutStranger(a).map((l) => l.msg)).toEqual(['mDNS: ignoring a node of cluster "other" (this is "wmesh")'])
    expect(aboutStranger(b).map((l) => l.msg)).toEqual(['mDNS: ignoring a node of cluster "other" (this is "wmesh")'])
    expect(strangerAboutUs).toEqual([])
  }, 40_000)
})
