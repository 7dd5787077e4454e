import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cells, ok, tableLines, type WmeshResult, wmesh } from './fixtures/cli/run-wmesh.js'
import { createLab, type Lab, requireRoot } from './lab/netns.js'
import {
  exampleWorkers,
  killAll,
  meshFixtures,
  type NodeProcess,
  startNodeProcess,
  tempCluster,
} from './support/node-process.js'

// Three simulated hosts (network namespaces on one bridge) whose nodes find each other by
// mDNS. The CLI runs on h2 with no --join: it finds the cluster by mDNS too. mDNS runs only
// inside these namespaces (see TESTING.md).
describe('wmesh on a namespaced 3-host cluster, found by mDNS', () => {
  let lab: Lab
  const nodes: NodeProcess[] = []
  const { dir, secretFile } = tempCluster()
  const echo = { file: `${meshFixtures}echo-worker.mjs` }

  /** `wmesh args...` on h2, with the secret and nothing else: no seeds. */
  const onH2 = (...args: string[]): Promise<WmeshResult> => {
    const h2 = lab.hosts[1]
    if (!h2) throw new Error('no h2')
    return wmesh([...args, '--secret-file', secretFile], { wrapper: ['ip', 'netns', 'exec', h2.ns] })
  }

  beforeAll(async () => {
    requireRoot()
    lab = await createLab({ hosts: 3 })
    lab.hosts.forEach((host, i) => {
      const workers: Record<string, unknown> = { echo }
      if (i === 0) {
        workers.server_worker = {
          file: `${exampleWorkers}server-worker.ts`,
          args: { host: '0.0.0.0', port: 0, intervalMs: 1000 },
        }
      }
      nodes[i] = startNodeProcess(
        dir,
        { name: host.name, listen: `${host.ip}:7946`, mdns: true, interface: host.ip, secretFile, workers },
        ['ip', 'netns', 'exec', host.ns],
      )
    })
    await Promise.all(nodes.map((n) => n.waitFor((l) => String(l.msg).startsWith(`node ${n.name} running`), 'running')))
    // Until the nodes have found each other, the CLI may link with one that knows only itself.
    const deadline = Date.now() + 20_000
    for (;;) {
      const result = await onH2('workers', '--json')
      const running = result.code === 0 ? (JSON.parse(result.stdout) as unknown[]).length : 0
      if (running === 4) break
      if (Date.now() > deadline) throw new Error(`the cluster never converged: ${result.stdout}${result.stderr}`)
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
  }, 60_000)

  afterAll(async () => {
    await killAll(nodes.filter(Boolean))
    await lab?.destroy()
  })

  it('nodes, workers and services: tables and --json, with the hosts’ own addresses', async () => {
    const [nodesText, nodesJson, workersText, servicesJson] = await Promise.all([
      onH2('nodes'),
      onH2('nodes', '--json'),
      onH2('workers'),
      onH2('services', '--json'),
    ])
    const [header, ...rows] = tableLines(ok(nodesText).stdout)
    expect(cells(header as string)[0]).toBe('NODE')
    expect(rows.map((r) => cells(r).slice(0, 1).concat(cells(r).slice(2, 4)))).toEqual(
      lab.hosts.map((h) => [h.name, `${h.ip}:7946`, 'up']),
    )
    const parsed = JSON.parse(ok(nodesJson).stdout) as Array<{ name: string; addresses: string[]; linked: boolean }>
    expect(parsed.map((n) => [n.name, n.addresses])).toEqual(lab.hosts.map((h) => [h.name, [h.ip]]))
    expect(parsed.filter((n) => n.linked)).toHaveLength(1)
    expect(
      tableLines(ok(workersText).stdout)
        .slice(1)
        .map((l) => cells(l).slice(0, 4)),
    ).toEqual([
      ['echo', '-', 'h1', '1/1'],
      ['echo', '-', 'h2', '1/1'],
      ['echo', '-', 'h3', '1/1'],
      ['server_worker', '-', 'h1', '1/1'],
    ])
    expect(JSON.parse(ok(servicesJson).stdout)).toMatchObject([
      { name: 'time', node: 'h1', host: lab.hosts[0]?.ip, codec: 'raw' },
    ])
  })

  it('call reaches a worker on another host, and every host with --node all', async () => {
    const [one, all, ping] = await Promise.all([
      onH2('call', 'echo', 'echo', '{"from":"h2"}', '--node', 'h3'),
      onH2('call', 'echo', 'echo', '1', '--node', 'all', '--json'),
      onH2('ping', '-n', '2', '--json'),
    ])
    expect(JSON.parse(ok(one).stdout)).toEqual({ from: 'h2' })
    expect(JSON.parse(ok(all).stdout)).toEqual(['h1', 'h2', 'h3'].map((node) => ({ node, ok: true, value: 1 })))
    const rtts = JSON.parse(ok(ping).stdout) as Array<{ node: string; received: number }>
    expect(rtts.map((r) => [r.node, r.received])).toEqual([
      ['h1', 2],
      ['h2', 2],
      ['h3', 2],
    ])
  })
})
