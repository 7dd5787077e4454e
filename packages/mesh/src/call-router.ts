import {
  type CallOptions,
  NodeDownError,
  NodeStoppingError,
  NoSuchMethodError,
  NoSuchServiceError,
  NoSuchWorkerError,
  type ServiceInfo,
  type WorkerSelector,
} from '@wmesh/core'
import { MAX_TIMER_MS, waitWithDeadline } from '@wmesh/core/internal'
import { callOnEachNode, nodesRunning, runsWorker } from './call-all.js'
import type { Cluster } from './cluster.js'
import type { ClusterMessage, NodeEntry, WorkerEntry } from './cluster-protocol.js'
import { type CallOutcome, serviceInfo } from './mesh-types.js'
import type { Registry } from './registry.js'
import type { ResultStore } from './result-cache.js'
import { NIL, unpackTop } from './values.js'
import type { WorkerPool } from './worker-pool.js'
import type { WorkerSlot } from './worker-slot.js'

/** Who the router routes for, and its default timeouts. */
export interface CallRouterInit {
  /** The node's id (`name:incarnation`): its own registry entry. */
  id: string
  /** The node's name, for messages. */
  name: string
  /** Default timeout of calls and operations, in ms. */
  callTimeout: number
  /** Default timeout of deleting a worker, in ms. */
  shutdownTimeout: number
}

/** What the router needs from its node. */
export interface CallRouterComponents {
  /** The node's view of the cluster, itself included. */
  registry: Pick<Registry, 'nodes' | 'get' | 'byName'>
  /** Sends calls and operations to other nodes. */
  cluster: Pick<Cluster, 'call' | 'cast' | 'op'>
  /** This node's worker instances. */
  pool: Pick<WorkerPool, 'slotsOf' | 'hasModule' | 'remove'>
  /** This node's result caches. */
  results: Pick<ResultStore, 'get' | 'drop'>
  /** True once the node is stopping (or stopped): it takes no new calls. */
  stopping(): boolean
  /** The node's workers changed: its registry entry is out of date. */
  onChange(): void
}

const FIXARRAY_0 = Uint8Array.of(0x90)
const FIXARRAY_1 = Uint8Array.of(0x91)

/** Where a call goes: one of this node's instances, or another node. */
type Route = { local: WorkerSlot } | { remote: NodeEntry }

/**
 * Routes a node's calls, casts and worker operations to an instance on this node or to
 * another node, on encoded values, and counts the calls in flight that a graceful stop
 * waits for.
 */
export class CallRouter {
  readonly #init: CallRouterInit
  readonly #registry: CallRouterComponents['registry']
  readonly #cluster: CallRouterComponents['cluster']
  readonly #pool: CallRouterComponents['pool']
  readonly #results: CallRouterComponents['results']
  readonly #stopping: () => boolean
  readonly #onChange: () => void
  readonly #roundRobin = new Map<string, number>()
  #nextCallId = 1
  #inFlight = 0
  #idleWaiters: Array<() => void> = []

  constructor(init: CallRouterInit, components: CallRouterComponents) {
    this.#init = init
    this.#registry = components.registry
    this.#cluster = components.cluster
    this.#pool = components.pool
    this.#results = components.results
    this.#stopping = components.stopping
    this.#onChange = components.onChange
  }

  /** Calls in flight: routed from here and not settled yet. */
  get inFlight(): number {
    return this.#inFlight
  }

  /** Resolves once no call is in flight, or after `timeout` ms, whichever comes first. */
  idle(timeout: number): Promise<void> {
    if (this.#inFlight === 0) return Promise.resolve()
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeout)
      this.#idleWaiters.push(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }

  /** Throws `NodeStoppingError` once the node is stopping. */
  checkAccepting(): void {
    if (this.#stopping()) {
      throw new NodeStoppingError(`node ${this.#init.name} is shutting down and takes no new calls`)
    }
  }

  /** The registry entry of a node, by id or name; `NodeDownError` if it is not in the cluster. */
  nodeByName(node: string): NodeEntry {
    const entry = this.#registry.get(node) ?? this.#registry.byName(node)
    if (!entry) throw new NodeDownError(`node "${node}" is not in the cluster (as seen from ${this.#init.name})`)
    return entry
  }

  /**
   * A call to `name.method`; resolves to the encoded result. Without `anyNode` only this
   * node's instances may take it.
   */
  call(
    name: string,
    selector: WorkerSelector,
    method: string,
    arg: Uint8Array,
    timeout: number | undefined,
    signal: AbortSignal | undefined,
    anyNode: boolean,
  ): Promise<Uint8Array> {
    let route: Route
    try {
      route = this.#route(name, selector, method, anyNode)
    } catch (error) {
      return Promise.reject(error)
    }
    const limit = wholeMs(timeout ?? this.#init.callTimeout)
    if ('remote' in route) {
      const call = { target: name, key: selector.key, method, arg, timeout: limit, cast: false }
      return this.#track(this.#cluster.call(route.remote.id, call, signal))
    }
    const slot = route.local
    const id = this.#nextCallId++
    return this.#track(
      waitWithDeadline<Uint8Array>(`call ${name}.${method}`, { timeout: limit, signal }, (resolve, reject) => {
        slot.dispatch(id, method, arg, false, { resolve, reject })
        // However the wait ends: a late answer has nobody to go to.
        return () => slot.forget(id)
      }),
    )
  }

  /** A call nobody waits for; throws at once if it has nowhere to go. */
  cast(name: string, selector: WorkerSelector, method: string, arg: Uint8Array, anyNode: boolean): void {
    const route = this.#route(name, selector, method, anyNode)
    if ('remote' in route) {
      // Throws (to the caster) what keeps it from leaving: a value too large, a full queue.
      this.#cluster.cast(route.remote.id, { target: name, key: selector.key, method, arg, timeout: 0 })
      return
    }
    route.local.dispatch(this.#nextCallId++, method, arg, true, undefined)
  }

  /** `node: 'all'`: the call on every node that runs the worker, one outcome per node. */
  async callAll(
    name: string,
    selector: WorkerSelector,
    method: string,
    arg: Uint8Array,
    options: CallOptions,
  ): Promise<CallOutcome[]> {
    const nodes = nodesRunning(this.#registry.nodes(), name, selector.key)
    if (nodes.length === 0) throw new NoSuchWorkerError(`no running instance of ${name} in the cluster`)
    return callOnEachNode(nodes, async (entry) =>
      unpackTop(
        await this.call(name, { ...selector, node: entry.id }, method, arg, options.timeout, options.signal, true),
      ),
    )
  }

  /** A call from another node runs here; a client's call may be routed anywhere. */
  serveCall(message: Extract<ClusterMessage, { t: 'call' }>, fromClient: boolean): Promise<Uint8Array> {
    const selector: WorkerSelector = {
      key: message.key ?? undefined,
      node: fromClient ? (message.node ?? undefined) : undefined,
    }
    if (message.cast) {
      this.cast(message.target, selector, message.method, message.arg, fromClient)
      return Promise.resolve(NIL)
    }
    return this.call(message.target, selector, message.method, message.arg, message.timeout, undefined, fromClient)
  }

  /** A cached result of the worker, here or on the node that runs it: `[value]` or `[]`, encoded. */
  async askResult(name: string, selector: WorkerSelector, key: string, timeout?: number): Promise<Uint8Array> {
    const local = this.#pool.slotsOf(name).some((s) => selector.key === undefined || s.key === selector.key)
    const onlyNode = selector.node === undefined ? undefined : this.nodeByName(selector.node)
    if ((local && (!onlyNode || onlyNode.id === this.#init.id)) || this.#pool.hasModule(name)) {
      const value = this.#results.get(name, selector.key, key)
      if (value || onlyNode?.id === this.#init.id) return value ? Buffer.concat([FIXARRAY_1, value]) : FIXARRAY_0
    }
    const holder = this.#remoteHolder(name, selector, onlyNode)
    if (!holder) {
      if (local || this.#pool.hasModule(name)) return FIXARRAY_0
      throw new NoSuchWorkerError(`no worker named "${name}" in the cluster`)
    }
    return this.#cluster.op(
      holder.id,
      { op: 'askResult', target: name, key: selector.key, entry: key },
      timeout ?? this.#init.callTimeout,
    )
  }

  /** Stops and forgets the matching instances, here or on the node that runs them. */
  async delete(name: string, selector: WorkerSelector, timeout?: number): Promise<void> {
    const slots = this.#pool.slotsOf(name).filter((s) => selector.key === undefined || s.key === selector.key)
    const onlyNode = selector.node === undefined ? undefined : this.nodeByName(selector.node)
    if (slots.length > 0 && (!onlyNode || onlyNode.id === this.#init.id)) {
      // Forgotten at once: a new instance with the same key may start (and cache) while these stop.
      for (const slot of slots) {
        this.#pool.remove(slot)
        this.#results.drop(slot.name, slot.key)
      }
      await Promise.all(slots.map((s) => s.stop(this.#init.shutdownTimeout)))
      this.#onChange()
      return
    }
    const holder = this.#remoteHolder(name, selector, onlyNode)
    const what = selector.key !== undefined ? `${name} with key "${selector.key}"` : name
    if (!holder) throw new NoSuchWorkerError(`no instance of ${what} in the cluster`)
    await this.#cluster.op(
      holder.id,
      { op: 'delete', target: name, key: selector.key },
      timeout ?? this.#init.shutdownTimeout,
    )
  }

  /** A server published as `name`: one of this node's if it has any, round-robin. */
  resolveService(name: string, node: string | undefined): ServiceInfo {
    const onlyNode = node === undefined ? undefined : this.nodeByName(node)
    const entries = onlyNode ? [onlyNode] : this.#registry.nodes()
    const local = entries
      .filter((e) => e.id === this.#init.id)
      .flatMap((e) => e.services.filter((s) => s.name === name).map((s) => serviceInfo(s, e)))
    const candidates =
      local.length > 0
        ? local
        : entries.flatMap((e) => e.services.filter((s) => s.name === name).map((s) => serviceInfo(s, e)))
    if (candidates.length === 0) {
      throw new NoSuchServiceError(`no server is published as "${name}"${onlyNode ? ` on node ${onlyNode.name}` : ''}`)
    }
    return candidates[this.#turn(`service:${name}`) % candidates.length] as ServiceInfo
  }

  /**
   * Picks where a call goes: a running local instance if there is one (round-robin over
   * unkeyed ones, or the keyed one), else a node whose registry entry lists one.
   */
  #route(name: string, selector: WorkerSelector, method: string, anyNode: boolean): Route {
    this.checkAccepting()
    const matches = (w: { name: string; key: string | undefined; state: string }) =>
      runsWorker(w as Pick<WorkerEntry, 'name' | 'key' | 'state'>, name, selector.key)
    let onlyNode: NodeEntry | undefined
    if (selector.node !== undefined) onlyNode = this.nodeByName(selector.node)
    if (onlyNode === undefined || onlyNode.id === this.#init.id) {
      const running = this.#pool.slotsOf(name).filter((s) => matches({ name, key: s.key, state: s.state }))
      if (running.length > 0) {
        const slot = running[this.#turn(name) % running.length] as WorkerSlot
        if (!slot.hasMethod(method)) throw new NoSuchMethodError(`${name} has no public method "${method}"`)
        return { local: slot }
      }
    }
    if (anyNode && onlyNode?.id !== this.#init.id) {
      const nodes = (onlyNode ? [onlyNode] : this.#registry.nodes()).filter(
        (entry) => entry.id !== this.#init.id && entry.workers.some(matches),
      )
      if (nodes.length > 0) {
        const entry = nodes[this.#turn(`@${name}`) % nodes.length] as NodeEntry
        const worker = entry.workers.find(matches) as WorkerEntry
        if (!worker.methods.includes(method)) throw new NoSuchMethodError(`${name} has no public method "${method}"`)
        return { remote: entry }
      }
    }
    const what = selector.key !== undefined ? `${name} with key "${selector.key}"` : name
    const where = onlyNode ? `on node ${onlyNode.name}` : anyNode ? 'in the cluster' : `on node ${this.#init.name}`
    throw new NoSuchWorkerError(`no running instance of ${what} ${where}`)
  }

  /** Another node (`onlyNode`, or any) whose entry lists an instance of the worker, running or not. */
  #remoteHolder(name: string, selector: WorkerSelector, onlyNode: NodeEntry | undefined): NodeEntry | undefined {
    return (onlyNode ? [onlyNode] : this.#registry.nodes()).find(
      (entry) =>
        entry.id !== this.#init.id &&
        entry.workers.some((w) => w.name === name && (selector.key === undefined || w.key === selector.key)),
    )
  }

  #turn(key: string): number {
    const turn = this.#roundRobin.get(key) ?? 0
    this.#roundRobin.set(key, turn + 1)
    return turn
  }

  /** Counts a call in flight until `promise` settles, for graceful stop. */
  #track<T>(promise: Promise<T>): Promise<T> {
    this.#inFlight++
    return promise.finally(() => {
      if (--this.#inFlight === 0) for (const wake of this.#idleWaiters.splice(0)) wake()
    })
  }
}

/**
 * A timeout as the timers and the wire take it: whole ms (peers refuse a fraction), at most
 * 2^31-1 (timers turn more into 1 ms). What is not a number acts as 1 ms, as in a timer;
 * a timeout from the wire or from JavaScript callers may be anything.
 */
function wholeMs(timeout: unknown): number {
  if (typeof timeout !== 'number' || Number.isNaN(timeout)) return 1
  return Math.min(Math.max(Math.ceil(timeout), 0), MAX_TIMER_MS)
}
