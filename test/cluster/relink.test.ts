import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startProxy, type TcpProxy } from '../lab/proxy.js'
import { trafficProbeScript } from '../reliability/lab-cluster.js'
import {
  freePorts,
  killAll,
  meshFixtures,
  type NodeProcess,
  startNodeProcess,
  tempCluster,
} from '../support/node-process.js'
import { Probe } from '../support/probe.js'

// A stalled connection is replaced, not taken for a dead node. Three nodes on loopback;
// only the link between a and b crosses a proxy (a's seed for b is the proxy; b dials
// nobody; c reaches both directly). `stallOpen` freezes that one connection, as TCP
// back-off does on a lossy path, while new connections pass. a and b each fall silent to
// the other, c still hears both, so they keep the link and dial a fresh one; both move
// to it, and nobody is marked down. Calls stuck on the old link still get their answer
// once it moves again.
const HEARTBEAT_INTERVAL = 250
const HEARTBEAT_TIMEOUT = 1000
const SUSPECT_TIMEOUT = 4000
const STALL = 2500

interface Trio {
  nodes: NodeProcess[]
  proxy: TcpProxy
  probe: Probe
  stop(): Promise<void>
}

/** b, a and c on loopback, the a-b link through a proxy; a probe linked to a; every node sees all three. */
async function proxiedTrio(
  timing: (name: string) => { heartbeatTimeout: number; suspectTimeout: number },
): Promise<Trio> {
  const { dir, secretFile } = tempCluster()
  const [pa, pb, pc] = (await freePorts(3)) as [number, number, number]
  const proxy = await startProxy({ host: '127.0.0.2', port: pb, target: { host: '127.0.0.1', port: pb } })
  const node = (name: string, port: number, join: string[]) =>
    startNodeProcess(dir, {
      name,
      listen: `127.0.0.1:${port}`,
      join,
      mdns: false,
      secretFile,
      heartbeatInterval: HEARTBEAT_INTERVAL,
      ...timing(name),
      workers: { echo: { file: `${meshFixtures}echo-worker.mjs` } },
    })
  const nodes = [
    node('b', pb, []),
    node('a', pa, [`127.0.0.2:${pb}`, `127.0.0.1:${pc}`]),
    node('c', pc, [`127.0.0.1:${pa}`, `127.0.0.1:${pb}`]),
  ]
  const client = spawn(process.execPath, [trafficProbeScript, secretFile, `127.0.0.1:${pa}`], {
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const stop = async () => {
    const exited = client.exitCode === null && client.signalCode === null ? once(client, 'exit') : undefined
    client.kill('SIGKILL')
    await Promise.all([exited, killAll(nodes), proxy.close()])
  }
  try {
    await Promise.all(nodes.map((n) => n.waitFor((l) => String(l.msg).startsWith(`node ${n.name} running`))))
    const probe = new Probe(client)
    await probe.waitFor((l) => l.event === 'ready', 20_000, 'the probe to link with a')
    // Every node sees all three, so c can vouch for a and b.
    await probe.until(
      { op: 'call', worker: 'echo', method: 'view', node: 'all', timeout: 1000 },
      (l) =>
        l.ok === true &&
        (l.value as Array<{ ok: boolean; value?: { nodes: string[] } }>).filter((o) => o.value?.nodes.length === 3)
          .length === 3,
      15_000,
      'every node seeing all three',
    )
    return { nodes, proxy, probe, stop }
  } catch (error) {
    await stop()
    throw error
  }
}

/** Down lines a node logged since `since`. */
const downsSince = (n: NodeProcess, since: number) =>
  n.lines.filter((l) => / is down: /.test(String(l.msg)) && Number(l.time) >= since).map((l) => l.msg)

describe('a stalled link whose peer others still hear', () => {
  let trio: Trio
  let nodes: NodeProcess[]
  let proxy: TcpProxy
  let probe: Probe

  beforeAll(async () => {
    trio = await proxiedTrio(() => ({ heartbeatTimeout: HEARTBEAT_TIMEOUT, suspectTimeout: SUSPECT_TIMEOUT }))
    ;({ nodes, proxy, probe } = trio)
  }, 60_000)

  afterAll(async () => {
    await trio?.stop()
  })

  const line = (name: string, pattern: RegExp, since: number) =>
    nodes.find((n) => n.name === name)?.lines.find((l) => pattern.test(String(l.msg)) && Number(l.time) >= since)

  it('moves a and b to a fresh link while the old one is stuck; nobody is down; stuck calls are answered after', async () => {
    const before = await proxy.stats()
    expect(before.open, 'the a-b link crosses the proxy').toBe(1)
    const from = Date.now()
    await proxy.stallOpen()
    // Stuck on the old link until the stall ends; the retired link stays open for its answer.
    const stuck = probe.request(
      { op: 'call', worker: 'echo', method: 'echo', arg: 'stuck', node: 'b', timeout: 10_000 },
      15_000,
    )
    // Awaited below; if an assertion fails first, its rejection must not go unhandled.
    stuck.catch(() => {})
    let after: Awaited<ReturnType<Probe['request']>>
    try {
      const relinked = await Promise.race(
        nodes
          .filter((n) => n.name !== 'c')
          .map((n) => n.waitFor((l) => /^relinked with /.test(String(l.msg)) && Number(l.time) >= from)),
      )
      const took = Number(relinked.time) - from
      // Asked half way to heartbeatTimeout: relinked before the bound.
      expect(took, 'relinked once the silence was half a heartbeatTimeout').toBeGreaterThanOrEqual(
        HEARTBEAT_TIMEOUT / 2 - HEARTBEAT_INTERVAL,
      )
      expect(took).toBeLessThan(HEARTBEAT_TIMEOUT + HEARTBEAT_INTERVAL)
      // The old connection is still stalled: this call can only go over the new link.
      after = await probe.request({
        op: 'call',
        worker: 'echo',
        method: 'echo',
        arg: 'fresh',
        node: 'b',
        timeout: 2000,
      })
      expect(Date.now() - from, 'the fresh call was answered during the stall').toBeLessThan(STALL)
    } finally {
      const left = STALL - (Date.now() - from)
      if (left > 0) await new Promise((resolve) => setTimeout(resolve, left))
      await proxy.resume()
    }
    expect(after).toMatchObject({ ok: true, value: 'fresh' })
    expect(await stuck).toMatchObject({ ok: true, value: 'stuck' })
    for (const n of nodes) {
      expect(
        n.lines
          .filter((l) => / is down: |closing link/.test(String(l.msg)) && Number(l.time) >= from)
          .map((l) => l.msg),
        `${n.name}'s downs`,
      ).toEqual([])
    }
    expect(probe.lines.filter((l) => l.event === 'node:down' && (l.at as number) >= from)).toEqual([])
    // Both sides said so: one dialed the fresh link, the other took it at its request.
    expect(line('a', /^relinked with b:/, from) ?? line('b', /^relinked with a:/, from)).toBeDefined()
    // The retired link closes after its linger (suspectTimeout); the fresh one is direct.
    const deadline = Date.now() + SUSPECT_TIMEOUT + 5000
    while ((await proxy.stats()).open > 0 && Date.now() < deadline) {
      // The proxy has no event for "a relayed connection closed": poll its count.
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    expect((await proxy.stats()).open, 'the retired link was closed').toBe(0)
    expect((await proxy.stats()).accepted, 'the fresh link does not cross the proxy').toBe(before.accepted)
  }, 60_000)
})

describe('a stalled link whose far end has already given up on it', () => {
  let trio: Trio

  // b asks nobody (suspectTimeout = heartbeatTimeout), as a node whose witnesses' answers
  // are lost would: it drops the stalled link at heartbeatTimeout, its FIN stuck in the
  // stall. a, vouched for by c, relinks; b has no link to replace and takes a's fresh
  // one as a plain link (it answers with its entry, not `relinked`); b's own redial finds
  // a's old link silent and replaces it. a must end on a live link without marking b down.
  beforeAll(async () => {
    // a asks first half way to its bound (1.5 s); b gives up at 1 s, before that.
    trio = await proxiedTrio((name) =>
      name === 'b'
        ? { heartbeatTimeout: HEARTBEAT_TIMEOUT, suspectTimeout: HEARTBEAT_TIMEOUT }
        : { heartbeatTimeout: 3 * HEARTBEAT_TIMEOUT, suspectTimeout: SUSPECT_TIMEOUT },
    )
  }, 60_000)

  afterAll(async () => {
    await trio?.stop()
  })

  it('a moves to a fresh link and never marks b down', async () => {
    const { nodes, proxy, probe } = trio
    const [b, a] = nodes as [NodeProcess, NodeProcess]
    const from = Date.now()
    await proxy.stallOpen()
    try {
      await a.waitFor((l) => /^(linked afresh|relinked) with b:/.test(String(l.msg)) && Number(l.time) >= from)
      // The old connection is still stalled: this call can only go over the new link.
      const answer = await probe.request({
        op: 'call',
        worker: 'echo',
        method: 'echo',
        arg: 'x',
        node: 'b',
        timeout: 2000,
      })
      expect(answer).toMatchObject({ ok: true, value: 'x' })
    } finally {
      await proxy.resume()
    }
    expect(downsSince(a, from), "a's downs").toEqual([])
    // b did give up on the old link (that is the case under test).
    expect(downsSince(b, from).length, "b's downs").toBeGreaterThan(0)
  }, 60_000)
})
