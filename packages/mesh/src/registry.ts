import { EventEmitter } from 'node:events'
import type { NodeEntry, ServiceEntry, WorkerEntry } from './cluster-protocol.js'
import { isNewerIncarnation } from './identity.js'

/** A worker or service event names the node it belongs to. */
export interface WorkerEvent {
  node: string
  nodeId: string
  worker: WorkerEntry
  reason?: string
}
export interface ServiceEvent {
  node: string
  nodeId: string
  service: ServiceEntry
  reason?: string
}
export interface NodeEvent {
  node: NodeEntry
  reason?: string
}

export interface RegistryEvents {
  'node:up': [NodeEvent]
  'node:down': [NodeEvent]
  'worker:up': [WorkerEvent]
  'worker:down': [WorkerEvent]
  'service:up': [ServiceEvent]
  'service:down': [ServiceEvent]
  /** Any entry was applied or removed (after the specific events above). */
  changed: []
}

const workerKey = (w: WorkerEntry): string => `${w.name}\u0000${w.key ?? ''}\u0000${w.instance ?? ''}`
const serviceKey = (s: ServiceEntry): string => `${s.name}\u0000${s.host}\u0000${s.port}`

/** msgpack turns undefined into nil; entries from the wire carry null where we mean "absent". */
function normalize(entry: NodeEntry): NodeEntry {
  return {
    ...entry,
    workers: entry.workers.map((w) => ({
      ...w,
      key: w.key ?? undefined,
      instance: w.instance ?? undefined,
      lastExit: w.lastExit ?? undefined,
      startedAt: w.startedAt ?? undefined,
      direct: w.direct ?? undefined,
    })),
    services: entry.services.map((s) => ({ ...s, key: s.key ?? undefined })),
  }
}

/**
 * The cluster registry as one node (or client) sees it: the entry of every node it knows,
 * each written only by its owner. No consensus: an entry replaces the one with the same id
 * if its rev is higher, and all entries of an older incarnation of the same name go when a
 * newer one appears. Changes come out as typed events.
 */
export class Registry extends EventEmitter<RegistryEvents> {
  readonly #entries = new Map<string, NodeEntry>()

  /** Every known node entry. */
  nodes(): NodeEntry[] {
    return [...this.#entries.values()]
  }

  get(id: string): NodeEntry | undefined {
    return this.#entries.get(id)
  }

  /** The live entry with this node name, if any. */
  byName(name: string): NodeEntry | undefined {
    for (const entry of this.#entries.values()) if (entry.name === name) return entry
    return undefined
  }

  /**
   * Applies an entry. Returns false (and changes nothing) if it is stale: a lower or equal
   * rev of a known id, or an older incarnation of a name that has a newer one here.
   */
  apply(raw: NodeEntry): boolean {
    const entry = normalize(raw)
    const current = this.#entries.get(entry.id)
    if (current && current.rev >= entry.rev) return false
    for (const other of this.#entries.values()) {
      if (other.name !== entry.name || other.id === entry.id) continue
      if (isNewerIncarnation(other.incarnation, entry.incarnation)) return false
      this.remove(other.id, `replaced by a newer incarnation (${entry.incarnation})`)
    }
    this.#entries.set(entry.id, entry)
    if (!current) this.emit('node:up', { node: entry })
    this.#diff(entry, current?.workers ?? [], current?.services ?? [], 'changed')
    this.emit('changed')
    return true
  }

  /** Removes a node and everything it published; emits the down events. */
  remove(id: string, reason: string): NodeEntry | undefined {
    const entry = this.#entries.get(id)
    if (!entry) return undefined
    this.#entries.delete(id)
    for (const worker of entry.workers) {
      if (worker.state === 'running') this.emit('worker:down', { node: entry.name, nodeId: id, worker, reason })
    }
    for (const service of entry.services) this.emit('service:down', { node: entry.name, nodeId: id, service, reason })
    this.emit('node:down', { node: entry, reason })
    this.emit('changed')
    return entry
  }

  #diff(entry: NodeEntry, oldWorkers: WorkerEntry[], oldServices: ServiceEntry[], reason: string): void {
    const node = entry.name
    const nodeId = entry.id
    const before = new Map(oldWorkers.map((w) => [workerKey(w), w]))
    const after = new Map(entry.workers.map((w) => [workerKey(w), w]))
    for (const [k, w] of after) {
      const old = before.get(k)
      if (w.state === 'running' && old?.state !== 'running') this.emit('worker:up', { node, nodeId, worker: w })
      if (w.state !== 'running' && old?.state === 'running') {
        this.emit('worker:down', { node, nodeId, worker: w, reason: w.lastExit ?? w.state })
      }
    }
    for (const [k, w] of before) {
      if (!after.has(k) && w.state === 'running')
        this.emit('worker:down', { node, nodeId, worker: w, reason: 'deleted' })
    }
    const servicesBefore = new Map(oldServices.map((s) => [serviceKey(s), s]))
    const servicesAfter = new Map(entry.services.map((s) => [serviceKey(s), s]))
    for (const [k, s] of servicesAfter)
      if (!servicesBefore.has(k)) this.emit('service:up', { node, nodeId, service: s })
    for (const [k, s] of servicesBefore) {
      if (!servicesAfter.has(k)) this.emit('service:down', { node, nodeId, service: s, reason })
    }
  }
}
