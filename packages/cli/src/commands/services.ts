import type { Command } from 'commander'
import { exitWhenDone, isVerbose } from '../action.js'
import { addClusterOptions, type ClusterOptions } from '../cluster-options.js'
import { withCluster } from '../connect.js'
import { print, printJson } from '../output.js'
import { Painter } from '../style.js'
import { renderTable } from '../table.js'

/** A published server as `wmesh services --json` prints it. */
export interface ServiceRow {
  name: string
  node: string
  host: string
  port: number
  codec: string
  worker: string
  key: string | null
}

/** Adds `wmesh services`. */
export function registerServices(program: Command): void {
  addClusterOptions(
    program
      .command('services')
      .description('list the servers workers have published, and where to reach them')
      .argument('[name]', 'only services of this name'),
  ).action(
    exitWhenDone(async (name: string | undefined, options: ClusterOptions, command: Command) => {
      await withCluster({ ...options, verbose: isVerbose(command) }, async ({ client }) => {
        const rows = (await client.services())
          .filter((s) => name === undefined || s.name === name)
          .map(
            (s): ServiceRow => ({
              name: s.name,
              node: s.node,
              host: s.host,
              port: s.port,
              codec: s.codec,
              worker: s.worker,
              key: s.key ?? null,
            }),
          )
          .sort((a, b) => a.name.localeCompare(b.name) || a.node.localeCompare(b.node) || a.port - b.port)
        if (options.json) {
          printJson(rows)
          return
        }
        if (rows.length === 0) {
          process.stderr.write('no services are published\n')
          return
        }
        const p = new Painter()
        print(
          renderTable(
            [
              { header: p.paint('bold', 'SERVICE'), shrink: true },
              { header: p.paint('bold', 'NODE'), shrink: true },
              { header: p.paint('bold', 'ADDRESS'), shrink: true },
              { header: p.paint('bold', 'CODEC') },
              { header: p.paint('bold', 'WORKER'), shrink: true },
            ],
            rows.map((s) => [
              s.name,
              s.node,
              `${s.host.includes(':') ? `[${s.host}]` : s.host}:${s.port}`,
              s.codec,
              s.key === null ? s.worker : `${s.worker}[${s.key}]`,
            ]),
          ),
        )
      })
    }),
  )
}
