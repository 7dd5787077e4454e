import { type NodeInfo, TimeoutError } from '@wmesh/core'
import type { MeshClient } from '@wmesh/mesh'
import { type Command, Option } from 'commander'
import { exitWhenDone, isVerbose } from '../action.js'
import { addClusterOptions, type ClusterOptions, milliseconds } from '../cluster-options.js'
import { findNode, withCluster } from '../connect.js'
import { UsageError } from '../errors.js'
import { print, printJson } from '../output.js'
import { safeText } from '../style.js'

interface StopOptions extends ClusterOptions {
  node?: string[]
  all?: boolean
  timeout: number
  reason: string
}

/** A node `wmesh stop` stopped, as `--json` prints it. */
export interface StoppedRow {
  node: string
  id: string
  /** From the request until the node left the cluster. */
  ms: number
}

/** Resolves when `node` leaves the client's view; rejects after `timeout`. Listens from the call on. */
function departure(client: MeshClient, node: NodeInfo, timeout: number): { left: Promise<void>; cancel(): void } {
  let cancel = () => {}
  const left = new Promise<void>((resolve, reject) => {
    const onDown = (down: NodeInfo) => {
      if (down.id !== node.id) return
      cancel()
      resolve()
    }
    const timer = setTimeout(() => {
      cancel()
      reject(new TimeoutError(`${node.name} did not leave the cluster within ${timeout} ms`))
    }, timeout)
    cancel = () => {
      clearTimeout(timer)
      client.off('node:down', onDown)
    }
    client.on('node:down', onDown)
  })
  return { left, cancel }
}

/** Asks `node` to stop and waits until it has left. */
async function stopOne(client: MeshClient, node: NodeInfo, options: StopOptions): Promise<StoppedRow> {
  const started = performance.now()
  const { left, cancel } = departure(client, node, options.timeout)
  // Awaited below unless the stop request fails first: its rejection must not go unhandled.
  left.catch(() => {})
  try {
    await client.stopNode(node.id, options.reason, { timeout: options.timeout })
  } catch (error) {
    cancel()
    // The node may have closed our link (it was the linked node) before its answer came.
    if (node.id !== client.linkedNode) throw error
  }
  await left
  return { node: node.name, id: node.id, ms: Math.round(performance.now() - started) }
}

/** Adds `wmesh stop`. */
export function registerStop(program: Command): void {
  addClusterOptions(
    program
      .command('stop')
      .description('stop nodes gracefully (as SIGTERM does) and wait until they have left')
      .option('--node <node>', 'the node to stop (name or id), repeatable', (v: string, prev?: string[]) => [
        ...(prev ?? []),
        v,
      ])
      .option('--all', 'stop every node of the cluster')
      .option('--reason <text>', 'logged by the node', 'wmesh stop')
      .addOption(
        new Option('--timeout <ms>', 'wait this long for each node to leave').default(30_000).argParser(milliseconds),
      ),
  ).action(
    exitWhenDone(async (options: StopOptions, command: Command) => {
      if (options.all === true && options.node !== undefined) throw new UsageError('give --node or --all, not both')
      if (options.all !== true && options.node === undefined) {
        throw new UsageError('name the node to stop with --node NODE, or stop every node with --all')
      }
      await withCluster({ ...options, verbose: isVerbose(command) }, async ({ client }) => {
        const targets = options.all
          ? await client.nodes()
          : await Promise.all((options.node ?? []).map((ref) => findNode(client, ref)))
        // The node we are linked through goes last: until then it tells us when the others leave.
        const linked = client.linkedNode
        const others = targets.filter((n) => n.id !== linked)
        const stopped = await Promise.all(others.map((n) => stopOne(client, n, options)))
        const self = targets.find((n) => n.id === linked)
        if (self) stopped.push(await stopOne(client, self, options))
        if (options.json) printJson(stopped)
        else for (const s of stopped) print(safeText(`stopped ${s.node} (${s.id}) in ${s.ms} ms`))
      })
    }),
  )
}
