import type { CallOutcome, NodeInfo, ServiceInfo, WorkerInfo } from '@wmesh/core'
import type { NodeEntry, ServiceEntry, WorkerEntry } from './cluster-protocol.js'

export type { CallOutcome, NodeInfo }

/** Events of a node and of a client: membership, workers and services, with reasons. */
export interface MeshEvents {
  'node:up': [NodeInfo]
  'node:down': [NodeInfo & { reason: string }]
  'worker:up': [WorkerInfo]
  'worker:down': [WorkerInfo & { reason: string }]
  'service:up': [ServiceInfo]
  'service:down': [ServiceInfo & { reason: string }]
  /** A client linked with a node (its id); its registry now holds that node's full view. */
  'link:up': [string]
  /** A client lost its link (node id, reason); it links with another node it knows. */
  'link:down': [string, string]
  /** Someone asked this node to stop (`wmesh stop`); the owner of the process decides. */
  'stop-requested': [string]
}

export function nodeInfo(entry: NodeEntry, rtt: number | undefined): NodeInfo {
  const running = entry.workers.filter((w) => w.state === 'running').length
  const stopping =
    entry.workers.length > 0 && entry.workers.every((w) => w.state === 'stopping' || w.state === 'stopped')
  return {
    id: entry.id,
    name: entry.name,
    incarnation: entry.incarnation,
    addresses: entry.addresses,
    port: entry.port,
    status: stopping ? 'stopping' : 'up',
    startedAt: entry.startedAt,
    version: entry.version,
    workers: entry.workers.length,
    running,
    rtt,
  }
}

export function workerInfo(worker: WorkerEntry, entry: Pick<NodeEntry, 'name'>): WorkerInfo {
  return { ...worker, node: entry.name }
}

export function serviceInfo(service: ServiceEntry, entry: Pick<NodeEntry, 'name'>): ServiceInfo {
  return { ...service, node: entry.name }
}
