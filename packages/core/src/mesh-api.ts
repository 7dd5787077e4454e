import type { WaitOptions } from './deadline.js'

/** Options of `call`. */
export interface CallOptions extends WaitOptions {
  /** Milliseconds before the call fails with `TimeoutError` (default 10 s). */
  timeout?: number
}

/** Which instances a reference reaches. */
export interface WorkerSelector {
  /** Only the instance started with this key (BackgrounDRb's `worker_key`). */
  key?: string
  /**
   * Only instances on this node (by node name or id), or `'all'`: then `call` runs on every
   * node that has the worker and resolves to one `CallOutcome` per node.
   */
  node?: string
}

/** What a node reports about one worker instance. */
export interface WorkerInfo {
  name: string
  key: string | undefined
  /** Instance number among the unkeyed instances of this worker (0-based); undefined for keyed ones. */
  instance: number | undefined
  node: string
  state: 'starting' | 'running' | 'backoff' | 'stopping' | 'stopped' | 'failed'
  /** Times this instance was restarted after a crash. */
  restarts: number
  /** Why the last thread ended, if one did. */
  lastExit: string | undefined
  /** When the current thread started (ms since epoch). */
  startedAt: number | undefined
  /** Public methods other workers and clients can call. */
  methods: string[]
  /** Port where this instance takes direct calls from workers of other nodes, if it does. */
  direct?: number | undefined
}

/** A handle on a worker by name (and optionally key/node), from `mesh.worker(...)`. */
export interface WorkerRef {
  /**
   * Calls a public method and resolves to its result. Rejects with `NoSuchWorkerError`,
   * `NoSuchMethodError`, `TimeoutError`, `RemoteError` (the method threw),
   * `WorkerDownError` (the instance died mid-call), `NodeDownError` or `NodeStoppingError`.
   */
  call<T = unknown>(method: string, arg?: unknown, options?: CallOptions): Promise<T>
  /** Fire-and-forget: resolves once handed to an instance; the method's outcome is not reported. */
  cast(method: string, arg?: unknown): Promise<void>
  /** Reads a value the worker stored with `this.cache.set(key, value)`; undefined if none. */
  askResult<T = unknown>(key: string, options?: WaitOptions): Promise<T | undefined>
  /** Stops the instance(s) this reference selects (by key: the one started with `newWorker`). */
  delete(options?: WaitOptions): Promise<void>
  /** The instances this reference selects. */
  info(options?: WaitOptions): Promise<WorkerInfo[]>
}

/** Options of `newWorker`. */
export interface NewWorkerOptions extends WaitOptions {
  /** Key of the new instance; calls with `{ key }` reach it alone. Required, unique per worker name. */
  key: string
  /** Passed to the new instance's `create(data)`. */
  data?: unknown
  /** The node to start it on (default: the local node). */
  node?: string
}

/** A server a worker published with `startServer(..., { publish: name })`. */
export interface ServiceInfo {
  name: string
  /** Address other hosts can reach it at (never a wildcard like 0.0.0.0). */
  host: string
  port: number
  /** The codec the server speaks, so `connectService` can match it. */
  codec: string
  node: string
  worker: string
  key: string | undefined
}

/** What the registry says about one node. */
export interface NodeInfo {
  id: string
  name: string
  incarnation: string
  addresses: string[]
  /** Link port (0 for a standalone node). */
  port: number
  status: 'up' | 'stopping'
  startedAt: number
  version: string
  /** Worker instances on the node, and how many are running. */
  workers: number
  running: number
  /** Round trip of the link heartbeat, from the node answering (undefined for itself). */
  rtt: number | undefined
}

/** One node's answer to a `call` with `{ node: 'all' }`. */
export type CallOutcome<T = unknown> = { node: string; ok: true; value: T } | { node: string; ok: false; error: Error }

/** Options of `resolveService`. */
export interface ResolveServiceOptions extends WaitOptions {
  /** Only publishers on this node (name or id). */
  node?: string
}

/** The mesh as workers and clients see it. */
export interface Mesh {
  /** A reference to a worker by name, optionally a given key or node. */
  worker(name: string, selector?: WorkerSelector): WorkerRef
  /** Starts a new keyed instance of a worker the node knows (as BackgrounDRb's `new_worker`). */
  newWorker(name: string, options: NewWorkerOptions): Promise<WorkerInfo>
  /** Every worker instance. */
  workers(options?: WaitOptions): Promise<WorkerInfo[]>
  /** Every node of the cluster. */
  nodes(options?: WaitOptions): Promise<NodeInfo[]>
  /** Every published server. */
  services(options?: WaitOptions): Promise<ServiceInfo[]>
  /**
   * Picks one publisher of a service (local first, then round-robin). Rejects with
   * `NoSuchServiceError` when none is up.
   */
  resolveService(name: string, options?: ResolveServiceOptions): Promise<ServiceInfo>
}

/** A worker's result cache (BackgrounDRb's `cache[key] = value`), kept by its node across restarts. */
export interface ResultCache {
  /** Stores a MessagePack-encodable value under `key`, for `askResult(key)`. */
  set(key: string, value: unknown): void
  /** Removes the value under `key`. */
  delete(key: string): void
}
