import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import type { MeshClient } from '@wmesh/mesh'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fdCount } from '../lab/faults.js'
import { createLab, type Lab, requireRoot } from '../lab/netns.js'
import { eventually, type LoopbackCluster, loopbackCluster } from '../support/cluster.js'
import { killAll, type NodeProcess, startNodeProcess, tempCluster } from '../support/node-process.js'
import { latencies } from './calls.js'
import { echo, hold } from './lab-cluster.js'

// Scenario 5, the hostile inputs test/cluster-hostile.test.ts (garbage, an oversize length,
// a silent slowloris, a replayed handshake, a duplicate node name) and
// test/cluster-loopback.test.ts (a wrong secret, another cluster's name) do not cover at a
// link port: a zero and a just-too-large handshake length, a slowloris that keeps sending,
// a flood of idle connections; and an mDNS advert from another cluster. A published service
// port's share is in hostile-service.test.ts.
const FLOOD = Number(process.env.WMESH_FLOOD_SOCKETS ?? 400)
const SAMPLES = 200

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

describe('scenario 5: bad lengths and a trickling slowloris at a link port', () => {
  let cluster: LoopbackCluster
  let client: MeshClient

  beforeAll(async () => {
    cluster = await loopbackCluster([{ echo }, { echo }])
    client = await cluster.client()
  }, 30_000)

  afterAll(async () => {
    await cluster?.stop()
  })

  /** Opens a raw connection to n1's link port; `lines()` are n1's log lines about it. */
  const raw = async () => {
    const socket = connect({ host: '127.0.0.1', port: cluster.ports[0] as number })
    socket.on('error', () => {})
    await once(socket, 'connect')
    const peer = `127.0.0.1:${socket.localPort}`
    const about = (l: Record<string, unknown>) => l.peer === peer
    const n1 = cluster.nodes[0]
    if (!n1) throw new Error('no n1')
    return { socket, lines: () => n1.lines.filter(about), logged: () => n1.waitFor(about, `n1's line about ${peer}`) }
  }

  it.each([
    { name: 'a zero length', header: [0, 0, 0, 0] },
    // The handshake allows 4096 bytes a frame: one more is refused from the header alone.
    { name: 'a length one above the handshake limit', header: [0, 0, 0x10, 0x01] },
  ])('closes a connection that sends $name at once, with one line', async ({ header }) => {
    const { socket, lines, logged } = await raw()
    const opened = Date.now()
    socket.write(Buffer.from(header))
    await once(socket, 'close')
    const closedIn = Date.now() - opened
    await logged()
    console.log(`[scenario 5 link port] ${JSON.stringify(header)}: closed in ${closedIn} ms; ${lines()[0]?.msg}`)
    expect(closedIn).toBeLessThan(1000)
    expect(lines()).toHaveLength(1)
    expect(lines()[0]).toMatchObject({ level: 40, code: 'ERR_HANDSHAKE' })
    expect(await client.worker('echo', { node: 'n1' }).call('echo', 'still serving')).toBe('still serving')
  })

  it('closes a slowloris that keeps sending a byte every 250 ms at the handshake deadline, not later', async () => {
    const { socket, lines, logged } = await raw()
    const opened = Date.now()
    // A frame that announces 1000 bytes (within the handshake limit), then a trickle.
    socket.write(Buffer.from([0, 0, 0x03, 0xe8]))
    const drip = setInterval(() => socket.write(Buffer.from([0x61])), 250)
    try {
      const during = await latencies(() => client.worker('echo', { node: 'n1' }).call('echo', 'x'), SAMPLES)
      await once(socket, 'close')
      const closedIn = Date.now() - opened
      await logged()
      console.log(
        `[scenario 5 link port] trickling slowloris closed after ${closedIn} ms (deadline 5000); ` +
          `call p50/p99 meanwhile ${during.p50}/${during.p99} ms; ${lines()[0]?.msg}`,
      )
      expect(closedIn).toBeGreaterThanOrEqual(4500)
      expect(closedIn).toBeLessThan(7000)
      expect(lines()).toHaveLength(1)
      expect(lines()[0]).toMatchObject({ code: 'ERR_HANDSHAKE_TIMEOUT' })
      expect(during.p99).toBeLessThan(50)
    } finally {
      clearInterval(drip)
      socket.destroy()
    }
  }, 15_000)
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
