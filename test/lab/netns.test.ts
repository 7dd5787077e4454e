import { type ChildProcess, execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLab, type Lab, type LabHost, requireRoot, runOn as run } from './netns.js'

const probeScript = fileURLToPath(new URL('../fixtures/discovery-probe.mjs', import.meta.url))

function namespaces(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter(Boolean)
}

/** Starts a TCP server on the host's lab address; resolves once it listens. */
async function listen(host: LabHost, port: number): Promise<ChildProcess> {
  const server = host.exec(process.execPath, [
    '-e',
    `require('net').createServer((s)=>s.end()).listen(${port},'${host.ip}',()=>console.log('listening'))`,
  ])
  await once(server.stdout as NodeJS.ReadableStream, 'data')
  return server
}

/** One-shot TCP connect from `from` to `to`:port, with a deadline. */
function canConnect(from: LabHost, to: LabHost, port: number): Promise<boolean> {
  const script = `const s=require('net').connect({host:'${to.ip}',port:${port},timeout:700});s.on('connect',()=>process.exit(0));s.on('timeout',()=>process.exit(2));s.on('error',()=>process.exit(1))`
  return run(from, process.execPath, ['-e', script]).then(({ code }) => code === 0)
}

describe('network-namespace lab', () => {
  let lab: Lab

  beforeAll(async () => {
    requireRoot()
    const started = performance.now()
    lab = await createLab({ hosts: 3 })
    console.log(`lab of 3 hosts up in ${Math.round(performance.now() - started)} ms (${lab.prefix})`)
  })

  afterAll(async () => {
    await lab?.destroy()
  })

  it('gives each host its own namespace and address on one subnet', () => {
    expect(lab.hosts.map((h) => h.name)).toEqual(['h1', 'h2', 'h3'])
    const listed = namespaces()
    for (const host of lab.hosts) {
      expect(listed).toContain(host.ns)
      expect(host.ip).toMatch(/^10\.77\.\d+\.[123]$/)
    }
    expect(new Set(lab.hosts.map((h) => h.ip)).size).toBe(3)
  })

  it('lets every host reach every other host over TCP', async () => {
    const servers = await Promise.all(lab.hosts.map((host) => listen(host, 7007)))
    const pairs = lab.hosts.flatMap((from) => lab.hosts.filter((to) => to !== from).map((to) => [from, to] as const))
    const reached = await Promise.all(pairs.map(([from, to]) => canConnect(from, to, 7007)))
    expect(reached).toEqual(pairs.map(() => true))
    for (const server of servers) server.kill('SIGKILL')
  })

  it('partition stops traffic to a host and heal restores it', async () => {
    const [h1, h2, h3] = lab.hosts as [LabHost, LabHost, LabHost]
    const server = await listen(h2, 7008)
    const peer = await listen(h3, 7008)
    expect(await canConnect(h1, h2, 7008)).toBe(true)
    await lab.partition(h2)
    expect(await canConnect(h1, h2, 7008)).toBe(false)
    expect(await canConnect(h1, h3, 7008)).toBe(true)
    await lab.heal(h2)
    expect(await canConnect(h1, h2, 7008)).toBe(true)
    server.kill('SIGKILL')
    peer.kill('SIGKILL')
  })

  it('destroy() kills what runs in the lab, removes its namespaces, and is idempotent', async () => {
    const sleeper = (lab.hosts[0] as LabHost).exec('sleep', ['60'])
    const exited = once(sleeper, 'exit')
    expect(namespaces().filter((ns) => ns.startsWith(lab.prefix))).toHaveLength(4)
    const started = performance.now()
    await lab.destroy()
    console.log(`lab destroyed in ${Math.round(performance.now() - started)} ms`)
    await lab.destroy()
    expect(namespaces().filter((ns) => ns.startsWith(lab.prefix))).toEqual([])
    expect((await exited)[1]).toBe('SIGKILL')
  })
})

interface ProbeLine {
  event: string
  t: number
  nodeId?: string
  host?: string
  port?: number
  source?: string
}

interface Probe {
  host: LabHost
  child: ChildProcess
  lines: ProbeLine[]
  started: Promise<string>
}

/** Starts a discovery probe; `pinned` passes the host's address as `interface`. */
function startProbe(host: LabHost, cluster: string, name: string, pinned = true, extra: string[] = []): Probe {
  const args = [probeScript, '--cluster', cluster, '--name', name, '--port', '7946', ...extra]
  const child = host.exec(process.execPath, pinned ? [...args, '--interface', host.ip] : args, {
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const lines: ProbeLine[] = []
  let partial = ''
  let markStarted: (id: string) => void = () => {}
  const started = new Promise<string>((resolve) => {
    markStarted = resolve
  })
  child.stdout?.on('data', (chunk: Buffer) => {
    const parts = (partial + chunk.toString()).split('\n')
    partial = parts.pop() ?? ''
    for (const part of parts) {
      const line = JSON.parse(part) as ProbeLine
      lines.push(line)
      if (line.event === 'started' && line.nodeId) markStarted(line.nodeId)
    }
  })
  return { host, child, lines, started }
}

const candidateIds = (probe: Probe) =>
  new Set(probe.lines.filter((l) => l.event === 'candidate' && l.nodeId).map((l) => l.nodeId as string))

/** Polls `done` every 50 ms until it holds or `ms` pass; returns the time waited. */
async function until(done: () => boolean, ms: number): Promise<number> {
  const start = performance.now()
  while (!done() && performance.now() - start < ms) await new Promise((resolve) => setTimeout(resolve, 50))
  return Math.round(performance.now() - start)
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Closes the probe's stdin (a graceful stop, with goodbye); resolves with its exit code. */
async function stopProbe(probe: Probe): Promise<number | null> {
  if (probe.child.exitCode !== null) return probe.child.exitCode
  const exited = once(probe.child, 'exit')
  probe.child.stdin?.end()
  return ((await exited) as [number | null])[0]
}

const proposals = (probe: Probe, id: string) =>
  probe.lines.filter((l) => l.event === 'candidate' && l.nodeId === id).length

describe('Discovery over mDNS, inside the lab', () => {
  let lab: Lab
  let labProbes: Probe[] = []
  let labIds: string[] = []

  beforeAll(async () => {
    requireRoot()
    lab = await createLab({ hosts: 3 })
  })

  afterAll(async () => {
    await lab?.destroy()
  })

  it('each node discovers the others of its cluster, never itself nor another cluster', async () => {
    const launched = performance.now()
    // h3 runs without `interface`: bonjour then joins on every interface and sends on the default route.
    labProbes = lab.hosts.map((host, i) => startProbe(host, 'lab', host.name, i < 2))
    // Two nodes of another cluster, sharing hosts with lab nodes: they must find each other
    // (proving their adverts reach every host) while the lab nodes ignore them.
    const others = [
      startProbe(lab.hosts[0] as LabHost, 'other', 'o1'),
      startProbe(lab.hosts[1] as LabHost, 'other', 'o2'),
    ]
    labIds = await Promise.all(labProbes.map((p) => p.started))
    const otherIds = await Promise.all(others.map((p) => p.started))

    await until(
      () =>
        labProbes.every((p, i) => labIds.every((id, j) => i === j || candidateIds(p).has(id))) &&
        others.every((p, i) => candidateIds(p).has(otherIds[1 - i] as string)),
      10_000,
    )
    const found = Math.round(performance.now() - launched)

    labProbes.forEach((probe, i) => {
      const ids = candidateIds(probe)
      expect([...ids].sort(), `${probe.host.name} candidates`).toEqual(labIds.filter((_, j) => j !== i).sort())
      // The address comes from the packet source: the peer's lab address, on the fake port.
      for (const line of probe.lines.filter((l) => l.event === 'candidate')) {
        const peer = labProbes[labIds.indexOf(line.nodeId as string)]
        expect(line).toMatchObject({ host: peer?.host.ip, port: 7946, source: 'mdns' })
      }
    })
    others.forEach((probe, i) => {
      expect([...candidateIds(probe)]).toEqual([otherIds[1 - i]])
    })

    const times = labProbes.map((probe) => {
      const first = probe.lines.find((l) => l.event === 'started')?.t ?? 0
      const last = Math.max(...probe.lines.filter((l) => l.event === 'candidate').map((l) => l.t))
      return `${probe.host.name} ${last - first} ms`
    })
    console.log(`mDNS: all peers discovered ${found} ms after launch; after each start(): ${times.join(', ')}`)
    expect(await Promise.all(others.map(stopProbe))).toEqual([0, 0])
  })

  it('keeps re-proposing live peers, and stops proposing a node that said goodbye', async () => {
    const [p1, p2, p3] = labProbes as [Probe, Probe, Probe]
    const [id1, id2, id3] = labIds as [string, string, string]
    // A graceful stop sends the goodbye and lets the process exit by itself.
    expect(await stopProbe(p3)).toBe(0)
    await sleep(300)
    const gone = [proposals(p1, id3), proposals(p2, id3)]
    const live = [proposals(p1, id2), proposals(p2, id1)]
    await sleep(2500) // the probes re-propose every 1000 ms
    expect([proposals(p1, id3), proposals(p2, id3)]).toEqual(gone)
    expect(proposals(p1, id2)).toBeGreaterThanOrEqual((live[0] as number) + 2)
    expect(proposals(p2, id1)).toBeGreaterThanOrEqual((live[1] as number) + 2)
  })

  it('finds a node that was cut off while it announced, once healed (periodic queries)', async () => {
    const [p1, p2] = labProbes as [Probe, Probe]
    const h3 = lab.hosts[2] as LabHost
    await lab.partition(h3)
    // It also advertises a chosen address (nothing dials it: discovery only proposes).
    const late = startProbe(h3, 'lab', 'late', true, ['--advertise', 'late.lab.test'])
    const lateId = await late.started
    // Past the announcements at 0, 1 and 3 s; the next one is at 9 s.
    await sleep(3500)
    expect(candidateIds(p1).has(lateId)).toBe(false)
    await lab.heal(h3)
    const waited = await until(
      () => candidateIds(p1).has(lateId) && candidateIds(p2).has(lateId) && candidateIds(late).size === 2,
      3000,
    )
    console.log(`mDNS: partitioned node discovered ${waited} ms after heal`)
    expect(candidateIds(p1).has(lateId)).toBe(true)
    expect(candidateIds(p2).has(lateId)).toBe(true)
    expect([...candidateIds(late)].sort()).toEqual(labIds.slice(0, 2).sort())
    expect(p1.lines.find((l) => l.nodeId === lateId)).toMatchObject({ host: 'late.lab.test', port: 7946 })
    expect(await Promise.all([p1, p2, late].map(stopProbe))).toEqual([0, 0, 0])
  })
})
