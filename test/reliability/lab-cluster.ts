/**
 * A wmesh cluster on lab hosts for the reliability scenarios: one `wmesh start` per
 * namespaced host, joined by seeds (every host's link address; mDNS off, so a restarted or
 * healed host is found by the mesh's own redials), and a traffic probe (a client) on h1
 * linked to h1's node.
 */
import { fileURLToPath } from 'node:url'
import { createLab, type Lab, type LabHost, requireRoot } from '../lab/netns.js'
import { killAll, meshFixtures, type NodeProcess, startNodeProcess, tempCluster } from '../support/node-process.js'
import { Probe } from '../support/probe.js'

export const trafficProbeScript = fileURLToPath(new URL('./fixtures/traffic-probe.mjs', import.meta.url))
export const echo = { file: `${meshFixtures}echo-worker.mjs` }
export const LINK_PORT = 7946

export type Line = Record<string, unknown>

export interface LabCluster {
  lab: Lab
  dir: string
  secretFile: string
  nodes: NodeProcess[]
  host(i: number): LabHost
  /** Starts (or restarts, as a new incarnation) the node of host `i`; resolves once it runs. */
  start(i: number): Promise<NodeProcess>
  /** A client on h1, linked to h1's node. */
  probe: Probe
  /** The node id of every running node, as its own log says. */
  ids(): Promise<Map<string, string>>
  destroy(): Promise<void>
}

export interface LabClusterInit {
  hosts: number
  /** Workers of host `i` (default: an echo worker on every host). */
  workers?: (i: number) => Record<string, unknown>
  /** Extra node configuration (heartbeatInterval, heartbeatTimeout, ...). */
  config?: Record<string, unknown>
}

/**
 * Node configuration merged over every scenario's own, from `WMESH_NODE_CONFIG` (JSON): for
 * deliberately broken runs that prove a scenario catches what it names, e.g.
 * `WMESH_NODE_CONFIG='{"heartbeatTimeout":60000}'` must make the long pause of scenario 2 fail.
 */
const overrides = JSON.parse(process.env.WMESH_NODE_CONFIG || '{}') as Record<string, unknown>

export async function labCluster(init: LabClusterInit): Promise<LabCluster> {
  requireRoot()
  const lab = await createLab({ hosts: init.hosts })
  const { dir, secretFile } = tempCluster()
  const nodes: NodeProcess[] = []
  const seeds = lab.hosts.map((h) => `${h.ip}:${LINK_PORT}`)
  const host = (i: number): LabHost => {
    const h = lab.hosts[i]
    if (!h) throw new Error(`no host ${i}`)
    return h
  }
  const start = async (i: number): Promise<NodeProcess> => {
    const h = host(i)
    const node = startNodeProcess(
      dir,
      {
        name: h.name,
        listen: `${h.ip}:${LINK_PORT}`,
        join: seeds.filter((s) => !s.startsWith(`${h.ip}:`)),
        mdns: false,
        secretFile,
        workers: init.workers?.(i) ?? { echo },
        ...init.config,
        ...overrides,
      },
      ['ip', 'netns', 'exec', h.ns],
    )
    nodes[i] = node
    await node.waitFor((l) => String(l.msg).startsWith(`node ${h.name} running`), 'running')
    return node
  }
  try {
    await Promise.all(lab.hosts.map((_h, i) => start(i)))
    const h1 = host(0)
    const probe = new Probe(
      h1.exec(process.execPath, [trafficProbeScript, secretFile, `${h1.ip}:${LINK_PORT}`], {
        stdio: ['pipe', 'pipe', 'inherit'],
      }),
    )
    await probe.waitFor((l) => l.event === 'ready', 20_000, 'the probe to link')
    return {
      lab,
      dir,
      secretFile,
      nodes,
      host,
      start,
      probe,
      async ids() {
        const answer = await probe.request({ op: 'nodes' })
        const list = answer.value as Array<{ name: string; id: string }>
        return new Map(list.map((n) => [n.name, n.id]))
      },
      async destroy() {
        await killAll(nodes.filter(Boolean))
        await lab.destroy()
      },
    }
  } catch (error) {
    await killAll(nodes.filter(Boolean))
    await lab.destroy()
    throw error
  }
}

/** What `echo.view` answers on one node. */
export interface NodeView {
  nodes: string[]
  ids: string[]
  workers: string[]
}

/** Asks every node for its view (echo.view on `node: 'all'`), through the probe. */
export async function views(probe: Probe, timeout = 2000): Promise<Map<string, NodeView> | undefined> {
  const answer = await probe.request({ op: 'call', worker: 'echo', method: 'view', node: 'all', timeout })
  if (answer.ok !== true) return undefined
  const outcomes = answer.value as Array<{ node: string; ok: boolean; value?: NodeView }>
  const result = new Map<string, NodeView>()
  for (const o of outcomes) if (o.ok && o.value) result.set(o.node, o.value)
  return result
}

/** Resolves after `ms`. Only for holding a fault for a set time, never for waiting on an outcome. */
export const hold = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Events of the probe from `since` (ms epoch) on that match. */
export function eventsSince(probe: Probe, since: number, match: (l: Line) => boolean): Line[] {
  return probe.lines.filter((l) => typeof l.event === 'string' && (l.at as number) >= since && match(l))
}

/** The node id a node process logged when it started running. */
export function idOf(node: NodeProcess | undefined): string {
  const line = node?.lines.find((l) => String(l.msg).startsWith(`node ${node.name} running`))
  if (!line || typeof line.id !== 'string') throw new Error(`${node?.name ?? 'a node'} has not logged its id`)
  return line.id
}

/** What `downAndBack` saw: ms from the fault to the down, from the undo to the up again. */
export interface DownAndBack {
  detection: number
  back: number
  /** When the fault was undone (ms epoch). */
  undoneAt: number
  /** Why it stopped early, if it did; the figures so far are still set. */
  failure: unknown
}

/**
 * For a fault (started at `from`) that must mark node `id` down: waits up to `downWithin`
 * ms for the probe to see it down, holds the fault until `holdMs` after `from`, undoes it
 * (always), then waits up to `upWithin` ms for the same id to be up again, and one second
 * more for calls to flow. It does not throw: a failure comes back with the figures, so the
 * caller can stop its traffic and print them first.
 */
export async function downAndBack(
  probe: Probe,
  init: { id: string; name: string; from: number; holdMs: number; downWithin: number; upWithin: number },
  undo: () => unknown,
): Promise<DownAndBack> {
  const result: DownAndBack = { detection: Number.NaN, back: Number.NaN, undoneAt: Number.NaN, failure: undefined }
  try {
    const down = await probe.waitFor(
      (l) => l.event === 'node:down' && l.id === init.id && (l.at as number) >= init.from,
      init.downWithin,
      `${init.name} down during the fault`,
    )
    result.detection = (down.at as number) - init.from
    await hold(Math.max(0, init.from + init.holdMs - Date.now()))
  } catch (error) {
    result.failure = error
  } finally {
    result.undoneAt = Date.now()
    await undo()
  }
  if (result.failure) return result
  try {
    const up = await probe.waitFor(
      (l) => l.event === 'node:up' && l.id === init.id && (l.at as number) >= result.undoneAt,
      init.upWithin,
      `${init.name} up again after the fault`,
    )
    result.back = (up.at as number) - result.undoneAt
    await hold(1000)
  } catch (error) {
    result.failure = error
  }
  return result
}
