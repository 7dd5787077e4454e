import type { NodeInfo } from '@wmesh/core'
import type { Command } from 'commander'
import { exitWhenDone, isVerbose } from '../action.js'
import { addClusterOptions, type ClusterOptions } from '../cluster-options.js'
import { withCluster } from '../connect.js'
import { formatMs, formatUptime } from '../format.js'
import { print, printJson } from '../output.js'
import { Painter } from '../style.js'
import { renderTable } from '../table.js'

/** Round trip of the one ping `wmesh nodes` sends each node. */
const RTT_TIMEOUT_MS = 2000

/** A node as `wmesh nodes --json` prints it. */
export interface NodeRow {
  id: string
  name: string
  incarnation: string
  addresses: string[]
  port: number
  status: NodeInfo['status']
  startedAt: number
  uptimeMs: number
  version: string
  workers: number
  running: number
  /** Round trip from this command to the node and back, through the linked node; null if it did not answer. */
  rttMs: number | null
  /** The node this command linked with. */
  linked: boolean
}

/** The short id `wmesh nodes` shows: the random part of the incarnation (any command takes it as a node). */
export function shortId(node: Pick<NodeInfo, 'incarnation'>): string {
  return node.incarnation.slice(node.incarnation.lastIndexOf('-') + 1)
}

function nodeAddress(node: Pick<NodeInfo, 'addresses' | 'port'>): string {
  const [first, ...rest] = node.addresses
  if (first === undefined) return '-'
  const host = first.includes(':') ? `[${first}]` : first
  return `${host}:${node.port}${rest.length > 0 ? ` +${rest.length}` : ''}`
}

/** Prints the nodes table (or JSON). */
export function printNodes(rows: NodeRow[], json: boolean): void {
  if (json) {
    printJson(rows)
    return
  }
  const p = new Painter()
  print(
    renderTable(
      [
        { header: p.paint('bold', 'NODE'), shrink: true },
        { header: p.paint('bold', 'ID') },
        { header: p.paint('bold', 'ADDRESS'), shrink: true },
        { header: p.paint('bold', 'STATUS') },
        { header: p.paint('bold', 'UPTIME'), right: true },
        { header: p.paint('bold', 'WORKERS'), right: true },
        { header: p.paint('bold', 'RTT'), right: true },
        { header: p.paint('bold', 'VERSION') },
      ],
      rows.map((n) => [
        n.name,
        shortId(n),
        nodeAddress(n),
        p.paint(n.status === 'up' ? 'green' : 'yellow', n.status),
        formatUptime(n.uptimeMs),
        `${n.running}/${n.workers}`,
        formatMs(n.rttMs ?? undefined),
        n.version,
      ]),
    ),
  )
}

/** Adds `wmesh nodes`. */
export function registerNodes(program: Command): void {
  addClusterOptions(program.command('nodes').description('list the nodes of the cluster')).action(
    exitWhenDone(async (options: ClusterOptions, command: Command) => {
      await withCluster({ ...options, verbose: isVerbose(command) }, async ({ client }) => {
        const nodes = (await client.nodes()).sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id))
        const rtts = await Promise.all(
          nodes.map((n) => client.ping(n.id, { timeout: RTT_TIMEOUT_MS }).catch(() => undefined)),
        )
        const now = Date.now()
        const rows = nodes.map(
          (n, i): NodeRow => ({
            id: n.id,
            name: n.name,
            incarnation: n.incarnation,
            addresses: n.addresses,
            port: n.port,
            status: n.status,
            startedAt: n.startedAt,
            uptimeMs: Math.max(0, now - n.startedAt),
            version: n.version,
            workers: n.workers,
            running: n.running,
            rttMs: rtts[i] === undefined ? null : Math.round((rtts[i] as number) * 100) / 100,
            linked: n.id === client.linkedNode,
          }),
        )
        printNodes(rows, options.json === true)
      })
    }),
  )
}
