import type { WorkerInfo } from '@wmesh/core'
import type { Command } from 'commander'
import { exitWhenDone, isVerbose } from '../action.js'
import { addClusterOptions, type ClusterOptions } from '../cluster-options.js'
import { findNode, withCluster } from '../connect.js'
import { print, printJson } from '../output.js'
import { Painter, type Style } from '../style.js'
import { renderTable } from '../table.js'

/** A worker instance as `wmesh workers --json` prints it (every field always present). */
export interface WorkerRow {
  name: string
  key: string | null
  instance: number | null
  node: string
  state: WorkerInfo['state']
  restarts: number
  lastExit: string | null
  startedAt: number | null
  methods: string[]
}

const stateStyle: Record<WorkerInfo['state'], Style> = {
  running: 'green',
  starting: 'cyan',
  stopping: 'yellow',
  backoff: 'red',
  failed: 'red',
  stopped: 'dim',
}

export function workerRow(w: WorkerInfo): WorkerRow {
  return {
    name: w.name,
    key: w.key ?? null,
    instance: w.instance ?? null,
    node: w.node,
    state: w.state,
    restarts: w.restarts,
    lastExit: w.lastExit ?? null,
    startedAt: w.startedAt ?? null,
    methods: w.methods,
  }
}

/**
 * The table: one line per worker, key and node; the unkeyed instances of a worker on a
 * node (a pool) share a line with their count.
 */
function printWorkerTable(rows: WorkerRow[]): void {
  const p = new Painter()
  const groups = new Map<string, WorkerRow[]>()
  for (const row of rows) {
    const id = JSON.stringify([row.name, row.key, row.node])
    groups.set(id, [...(groups.get(id) ?? []), row])
  }
  print(
    renderTable(
      [
        { header: p.paint('bold', 'WORKER'), shrink: true },
        { header: p.paint('bold', 'KEY'), shrink: true },
        { header: p.paint('bold', 'NODE'), shrink: true },
        { header: p.paint('bold', 'INSTANCES'), right: true },
        { header: p.paint('bold', 'STATE') },
        { header: p.paint('bold', 'RESTARTS'), right: true },
      ],
      [...groups.values()].map((group) => {
        const first = group[0] as WorkerRow
        const states = [...new Set(group.map((w) => w.state))]
        const running = group.filter((w) => w.state === 'running').length
        return [
          first.name,
          first.key ?? '-',
          first.node,
          `${running}/${group.length}`,
          states.map((s) => p.paint(stateStyle[s], s)).join(','),
          String(group.reduce((sum, w) => sum + w.restarts, 0)),
        ]
      }),
    ),
  )
}

/** Adds `wmesh workers`. */
export function registerWorkers(program: Command): void {
  addClusterOptions(
    program
      .command('workers')
      .description('list the workers of the cluster: where they run, their state and restarts')
      .argument('[name]', 'only workers of this name')
      .option('--node <node>', 'only workers on this node (name or id)'),
  ).action(
    exitWhenDone(async (name: string | undefined, options: ClusterOptions & { node?: string }, command: Command) => {
      await withCluster({ ...options, verbose: isVerbose(command) }, async ({ client }) => {
        const node = options.node === undefined ? undefined : (await findNode(client, options.node)).name
        const rows = (await client.workers())
          .filter((w) => (name === undefined || w.name === name) && (node === undefined || w.node === node))
          .map(workerRow)
          .sort(
            (a, b) =>
              a.name.localeCompare(b.name) ||
              (a.key ?? '').localeCompare(b.key ?? '') ||
              a.node.localeCompare(b.node) ||
              (a.instance ?? 0) - (b.instance ?? 0),
          )
        if (options.json) printJson(rows)
        else if (rows.length === 0) process.stderr.write('no workers match\n')
        else printWorkerTable(rows)
      })
    }),
  )
}
