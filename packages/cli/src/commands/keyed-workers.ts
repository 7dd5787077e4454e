import type { Command } from 'commander'
import { exitWhenDone, isVerbose } from '../action.js'
import { addClusterOptions, type ClusterOptions } from '../cluster-options.js'
import { findNode, withCluster } from '../connect.js'
import { parseJsonArgument } from '../format.js'
import { print, printJson } from '../output.js'
import { safeText } from '../style.js'
import { workerRow } from './workers.js'

interface KeyedOptions extends ClusterOptions {
  key: string
  node?: string
  data?: string
}

/** Adds `wmesh new-worker` and `wmesh delete-worker` (BackgrounDRb's new_worker and delete). */
export function registerKeyedWorkers(program: Command): void {
  addClusterOptions(
    program
      .command('new-worker')
      .description('start a new keyed instance of a worker a node knows')
      .argument('<worker>', 'worker name')
      .requiredOption('--key <key>', 'key of the new instance (calls with --key reach it alone)')
      .option('--data <json>', "passed to the instance's create(data), as JSON")
      .option('--node <node>', 'start it on this node (name or id; default: the node this command links with)'),
  ).action(
    exitWhenDone(async (worker: string, options: KeyedOptions, command: Command) => {
      const data = options.data === undefined ? undefined : parseJsonArgument(options.data, '--data')
      await withCluster({ ...options, verbose: isVerbose(command) }, async ({ client }) => {
        const node = options.node === undefined ? undefined : (await findNode(client, options.node)).id
        const info = await client.newWorker(worker, { key: options.key, data, node })
        if (options.json) printJson(workerRow(info))
        else print(safeText(`started ${info.name} key ${info.key ?? options.key} on ${info.node} (${info.state})`))
      })
    }),
  )

  addClusterOptions(
    program
      .command('delete-worker')
      .description('stop a keyed worker instance started with new-worker')
      .argument('<worker>', 'worker name')
      .requiredOption('--key <key>', 'key of the instance')
      .option('--node <node>', 'the node it runs on (name or id; default: wherever it runs)'),
  ).action(
    exitWhenDone(async (worker: string, options: KeyedOptions, command: Command) => {
      await withCluster({ ...options, verbose: isVerbose(command) }, async ({ client }) => {
        const node = options.node === undefined ? undefined : (await findNode(client, options.node)).id
        await client.worker(worker, { key: options.key, node }).delete()
        if (options.json) printJson({ deleted: true, worker, key: options.key })
        else print(`deleted ${worker} key ${options.key}`)
      })
    }),
  )
}
