import type { WorkerSelector } from '@wmesh/core'
import { runsWorker } from './call-all.js'
import type { NodeEntry, WorkerEntry } from './cluster-protocol.js'
import { type DirectCaller, type DirectEndpoint, type DirectPeer, endpointKey } from './direct-caller.js'
import { directIdentity, instanceLabel } from './direct-protocol.js'

const MAX_CACHED_ROUTES = 1024

/** What a worker thread knows of one node, to route calls itself: sent by its node on every change. */
export interface DirectoryNode {
  id: string
  name: string
  /** Address to dial its workers' direct ports at. */
  host: string
  workers: DirectoryWorker[]
}

export type DirectoryWorker = Pick<WorkerEntry, 'name' | 'key' | 'instance' | 'state' | 'methods' | 'direct'> & {
  /** What its direct port must prove it is (`directIdentity`); set with `direct`. */
  directId?: string
}

/** Identities already worked out, by node id and label: a view changes far more often than its workers. */
const identities = new Map<string, string>()
const MAX_CACHED_IDENTITIES = 4096

function identityOf(nodeId: string, label: string): string {
  const key = `${nodeId}\u0000${label}`
  let id = identities.get(key)
  if (id === undefined) {
    if (identities.size >= MAX_CACHED_IDENTITIES) identities.clear()
    id = directIdentity(nodeId, label)
    identities.set(key, id)
  }
  return id
}

/** The directory a node sends its threads: every node of its view, itself included. */
export function directoryOf(entries: NodeEntry[], hostOf: (entry: NodeEntry) => string | undefined): DirectoryNode[] {
  const nodes: DirectoryNode[] = []
  for (const entry of entries) {
    const host = hostOf(entry)
    if (host === undefined) continue
    nodes.push({
      id: entry.id,
      name: entry.name,
      host,
      workers: entry.workers.map(({ name, key, instance, state, methods, direct }) => ({
        name,
        key,
        instance,
        state,
        methods,
        direct,
        directId: direct === undefined ? undefined : identityOf(entry.id, instanceLabel(name, key, instance)),
      })),
    })
  }
  return nodes
}

/**
 * Routes a worker's calls to other nodes straight to a worker thread there, with the same
 * rules as its node: a running local instance first (the node serves those), else round
 * robin over the nodes running one. Whenever the answer is not a direct link that is up,
 * it says "through the node" (undefined), and the node applies its rules and errors.
 */
export class DirectRouter {
  readonly caller: DirectCaller
  #self = ''
  #nodes: DirectoryNode[] = []
  /** Where each (name, key, node) may go, worked out on first use after each update. */
  readonly #routes = new Map<string, RouteSet>()

  constructor(caller: DirectCaller) {
    this.caller = caller
  }

  update(self: string, nodes: DirectoryNode[]): void {
    this.#self = self
    this.#nodes = nodes
    this.#routes.clear()
    const keep = new Set<string>()
    for (const node of nodes) {
      if (node.id === self) continue
      for (const w of node.workers) if (w.direct !== undefined) keep.add(peerKey(node.host, w))
    }
    this.caller.retain(keep, new Set(nodes.map((n) => n.name)))
  }

  route(name: string, selector: WorkerSelector, method: string): DirectPeer | undefined {
    const cacheKey =
      selector.key === undefined && selector.node === undefined
        ? name
        : `${name}\u0000${selector.key ?? ''}\u0000${selector.node ?? ''}`
    let set = this.#routes.get(cacheKey)
    if (!set) {
      set = this.#build(name, selector)
      // Keys may be per user or per session: never let the cache grow without bound.
      if (this.#routes.size >= MAX_CACHED_ROUTES) this.#routes.clear()
      this.#routes.set(cacheKey, set)
    }
    const nodes = set.nodes
    if (nodes.length === 0) return undefined
    // One counter spreads calls over the nodes, and over the instances of each node in turn.
    const turn = set.turn++
    const instances = nodes[turn % nodes.length] as Target[]
    if (instances.length === 0) return undefined
    const target = instances[Math.floor(turn / nodes.length) % instances.length] as Target
    // The node answers a method the worker lacks with the right error.
    if (!target.methods.includes(method)) return undefined
    return this.caller.peer(target.endpoint, target.peerKey)
  }

  /** Nodes (each a list of direct instances) a call may go to; none when it must go through the node. */
  #build(name: string, selector: WorkerSelector): RouteSet {
    const key = selector.key
    let nodes = this.#nodes
    const none: RouteSet = { nodes: [], turn: 0 }
    if (selector.node !== undefined) {
      const only = nodes.find((n) => n.id === selector.node) ?? nodes.find((n) => n.name === selector.node)
      if (!only || only.id === this.#self) return none
      nodes = [only]
    } else {
      // A running local instance comes first; the node serves those.
      const self = nodes.find((n) => n.id === this.#self)
      if (!self || self.workers.some((w) => runsWorker(w, name, key))) return none
    }
    const targets: Target[][] = []
    for (const node of nodes) {
      if (node.id === this.#self || !node.workers.some((w) => runsWorker(w, name, key))) continue
      targets.push(
        node.workers
          .filter((w) => runsWorker(w, name, key) && w.direct !== undefined && w.directId !== undefined)
          .map((w) => ({
            endpoint: {
              node: node.name,
              host: node.host,
              port: w.direct as number,
              id: w.directId as string,
              label: instanceLabel(name, w.key, w.instance),
            },
            peerKey: peerKey(node.host, w),
            methods: w.methods,
          })),
      )
    }
    return { nodes: targets, turn: 0 }
  }
}

/** The key of a listed worker's direct port (`endpointKey`). */
function peerKey(host: string, w: DirectoryWorker): string {
  return endpointKey({ host, port: w.direct as number, id: w.directId as string })
}

interface Target {
  endpoint: DirectEndpoint
  peerKey: string
  methods: string[]
}

interface RouteSet {
  /** Per node running the worker: its instances that take direct calls (maybe none). */
  nodes: Target[][]
  turn: number
}
