import type { NodeInfo } from '@wmesh/core'
import { type Command, Option } from 'commander'
import { exitWhenDone, isVerbose } from '../action.js'
import { addClusterOptions, type ClusterOptions, milliseconds } from '../cluster-options.js'
import { findNode, withCluster } from '../connect.js'
import { UsageError } from '../errors.js'
import { ExitCode } from '../exit-codes.js'
import { formatMs } from '../format.js'
import { print, printJson } from '../output.js'
import { Painter } from '../style.js'
import { renderTable } from '../table.js'

interface PingOptions extends ClusterOptions {
  count: number
  interval: number
  timeout: number
}

/** Round trips to one node, as `wmesh ping --json` prints them. */
export interface PingRow {
  node: string
  id: string
  sent: number
  received: number
  minMs: number | null
  medianMs: number | null
  maxMs: number | null
  samplesMs: number[]
}

const round = (ms: number) => Math.round(ms * 1000) / 1000

function median(sorted: number[]): number | null {
  if (sorted.length === 0) return null
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

async function pingNode(
  ping: (id: string) => Promise<number>,
  node: NodeInfo,
  count: number,
  interval: number,
): Promise<PingRow> {
  const samples: number[] = []
  for (let i = 0; i < count; i++) {
    if (i > 0) await new Promise((resolve) => setTimeout(resolve, interval))
    const ms = await ping(node.id).catch(() => undefined)
    if (ms !== undefined) samples.push(round(ms))
  }
  const sorted = [...samples].sort((a, b) => a - b)
  return {
    node: node.name,
    id: node.id,
    sent: count,
    received: samples.length,
    minMs: sorted[0] ?? null,
    medianMs: median(sorted),
    maxMs: sorted.at(-1) ?? null,
    samplesMs: samples,
  }
}

const positive = (value: string) => {
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < 1 || n > 1000)
    throw new UsageError(`expected a count of 1 to 1000, got "${value}"`)
  return n
}

/** Adds `wmesh ping`. */
export function registerPing(program: Command): void {
  addClusterOptions(
    program
      .command('ping')
      .description('measure round trips to each node (or one): min, median and max over a few samples')
      .argument('[node]', 'only this node (name or id)')
      .addOption(new Option('-n, --count <n>', 'samples per node').default(5).argParser(positive))
      .addOption(new Option('--interval <ms>', 'pause between samples').default(100).argParser(milliseconds))
      .addOption(
        new Option('--timeout <ms>', 'a sample not answered in this long is lost')
          .default(2000)
          .argParser(milliseconds),
      ),
  ).action(
    exitWhenDone(async (ref: string | undefined, options: PingOptions, command: Command) => {
      return withCluster({ ...options, verbose: isVerbose(command) }, async ({ client }) => {
        const nodes =
          ref === undefined
            ? (await client.nodes()).sort((a, b) => a.name.localeCompare(b.name))
            : [await findNode(client, ref)]
        const ping = (id: string) => client.ping(id, { timeout: options.timeout })
        // Nodes in parallel, each node's samples one after another.
        const rows = await Promise.all(nodes.map((n) => pingNode(ping, n, options.count, options.interval)))
        if (options.json) printJson(rows)
        else {
          const p = new Painter()
          print(
            renderTable(
              [
                { header: p.paint('bold', 'NODE'), shrink: true },
                { header: p.paint('bold', 'SENT'), right: true },
                { header: p.paint('bold', 'LOST'), right: true },
                { header: p.paint('bold', 'MIN'), right: true },
                { header: p.paint('bold', 'MEDIAN'), right: true },
                { header: p.paint('bold', 'MAX'), right: true },
              ],
              rows.map((r) => [
                r.node,
                String(r.sent),
                r.received === r.sent ? '0' : p.paint('red', String(r.sent - r.received)),
                formatMs(r.minMs ?? undefined),
                formatMs(r.medianMs ?? undefined),
                formatMs(r.maxMs ?? undefined),
              ]),
            ),
          )
        }
        // A node that answered no sample at all is as good as down.
        return rows.some((r) => r.received === 0) ? ExitCode.nodeDown : ExitCode.ok
      })
    }),
  )
}
