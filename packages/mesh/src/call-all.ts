import type { CallOutcome } from '@wmesh/core'
import type { NodeEntry, WorkerEntry } from './cluster-protocol.js'

/** A running instance of `name` that a call with `key` (or without) may reach. */
export function runsWorker(
  worker: Pick<WorkerEntry, 'name' | 'key' | 'state'>,
  name: string,
  key: string | undefined,
): boolean {
  return (
    worker.name === name &&
    worker.state === 'running' &&
    (key === undefined ? worker.key === undefined : worker.key === key)
  )
}

/** Nodes whose entries list a running instance of `name` (with `key`). */
export function nodesRunning(nodes: NodeEntry[], name: string, key: string | undefined): NodeEntry[] {
  return nodes.filter((entry) => entry.workers.some((w) => runsWorker(w, name, key)))
}

/** `node: 'all'`: runs `call` for every node and gathers one outcome per node, errors included. */
export function callOnEachNode(
  nodes: NodeEntry[],
  call: (entry: NodeEntry) => Promise<unknown>,
): Promise<CallOutcome[]> {
  return Promise.all(
    nodes.map(async (entry): Promise<CallOutcome> => {
      try {
        return { node: entry.name, ok: true, value: await call(entry) }
      } catch (error) {
        return { node: entry.name, ok: false, error: error as Error }
      }
    }),
  )
}
