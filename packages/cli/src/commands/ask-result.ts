import type { Command } from 'commander'
import { exitWhenDone, isVerbose } from '../action.js'
import { addClusterOptions, type ClusterOptions } from '../cluster-options.js'
import { findNode, withCluster } from '../connect.js'
import { NoResultError } from '../errors.js'
import { toJson } from '../format.js'
import { print } from '../output.js'

interface AskResultOptions extends ClusterOptions {
  workerKey?: string
  node?: string
}

/** Adds `wmesh ask-result` (BackgrounDRb's ask_result). */
export function registerAskResult(program: Command): void {
  addClusterOptions(
    program
      .command('ask-result')
      .description('print a value a worker stored with this.cache.set(key, value), as JSON')
      .argument('<worker>', 'worker name')
      .argument('<key>', 'the cache key')
      .option('--worker-key <key>', 'the keyed instance (new-worker --key) whose cache to read')
      .option('--node <node>', 'read the cache on this node (name or id)'),
    { json: false },
  ).action(
    exitWhenDone(async (worker: string, key: string, options: AskResultOptions, command: Command) => {
      await withCluster({ ...options, verbose: isVerbose(command) }, async ({ client }) => {
        const node = options.node === undefined ? undefined : (await findNode(client, options.node)).id
        const value = await client.worker(worker, { key: options.workerKey, node }).askResult(key)
        if (value === undefined) throw new NoResultError(`${worker} has no result stored under "${key}"`)
        print(toJson(value, 2))
      })
    }),
  )
}
