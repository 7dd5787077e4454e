import { EventEmitter } from 'node:events'
import { readFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import {
  type CallOptions,
  InvalidArgumentError,
  type Mesh,
  type NewWorkerOptions,
  NodeDownError,
  NodeStoppingError,
  NoSuchMethodError,
  NoSuchServiceError,
  NoSuchWorkerError,
  packValue,
  type ResolveServiceOptions,
  type ServiceInfo,
  TimeoutError,
  unpackFrame,
  type WaitOptions,
  type WorkerInfo,
  type WorkerRef,
  type WorkerSelector,
} from '@wmesh/core'
import type { Logger } from 'pino'
import { callOnEachNode, nodesRunning, runsWorker } from './call-all.js'
import { Cluster } from './cluster.js'
import type { ClusterMessage, ClusterOp, NodeEntry, WorkerEntry } from './cluster-protocol.js'
import { ConfigError, type NodeConfig, type NodeConfigInput, parseNodeConfig } from './config.js'
import { directoryOf } from './direct-router.js'
import { type NodeIdentity, newIdentity } from './identity.js'
import { createNodeLogger, logSinkOf } from './logger.js'
import { type CallOutcome, type MeshEvents, type NodeInfo, nodeInfo, serviceInfo, workerInfo } from './mesh-types.js'
import { reachableAddresses, sanitizeHostname, splitHostPort } from './node-addresses.js'
import { forwardRegistryEvents } from './registry-events.js'
import { ResultStore } from './result-cache.js'
import { Scheduler } from './scheduler.js'
import { serveThreadRequest, type ThreadRequestHost } from './thread-requests.js'
import { NIL, unpackTop } from './values.js'
import { WorkerPool } from './worker-pool.js'
import { WorkerLoadError, type WorkerSlot } from './worker-slot.js'

/** Injected dependencies of a node. */
export interface MeshNodeComponents {
  /** Root logger (default: `createNodeLogger` at the configured level). */
  logger?: Logger
}

const FIXARRAY_0 = Uint8Array.of(0x90)
const FIXARRAY_1 = Uint8Array.of(0x91)
const VERSION = '0.1.0'

/** Where a call goes: one of this node's instances, or another node. */
type Route = { local: WorkerSlot } | { remote: NodeEntry }

/**
 * A wmesh node: hosts workers, each instance in a worker thread of its own, supervised
 * and restarted with backoff; links with the other nodes of its cluster (when it has a
 * secret) and keeps the cluster registry; routes calls to any instance on any node;
 * keeps result caches; runs schedules. The main thread runs no user code.
 *
 * It is also the `Mesh` for the program that owns it: `node.worker('foo').call(...)`.
 */
export class MeshNode extends EventEmitter<MeshEvents> implements Mesh {
  readonly config: NodeConfig
  readonly identity: NodeIdentity
  readonly logger: Logger
  readonly #results = new ResultStore()
  readonly #roundRobin = new Map<string, number>()
  readonly #pool: WorkerPool
  readonly #cluster: Cluster
  #scheduler: Scheduler | undefined
  #nextCallId = 1
  #inFlight = 0
  #idleWaiters: Array<() => void> = []
  #state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new'
  #stopped: Promise<void> | undefined
  #publishScheduled = false
  #directoryScheduled = false
  /** What worker threads' requests are served with: this node, on encoded values. */
  readonly #threadHost: ThreadRequestHost = {
    call: (name, selector, method, arg, timeout) => this.#call(name, selector, method, arg, timeout, undefined, true),
    callAll: (name, selector, method, arg, options) => this.#callAll(name, selector, method, arg, options),
    cast: (name, selector, method, arg) => this.#cast(name, selector, method, arg, true),
    askResult: (name, selector, key) => this.#askResult(name, selector, key),
    newWorker: (name, options) => this.newWorker(name, options),
    delete: (name, selector) => this.#delete(name, selector),
    workerInfos: () => this.#workerInfos(),
    resolveService: (name, node) => this.#resolveService(name, node),
    services: () => this.services(),
    nodes: () => this.nodes(),
  }

  constructor(config: NodeConfigInput | NodeConfig, components: MeshNodeComponents = {}) {
    super()
    this.config = parseNodeConfig(config)
    this.identity = newIdentity(this.config.name ?? sanitizeHostname(hostname()))
    const root = components.logger ?? createNodeLogger({ level: this.config.logLevel })
    this.logger = root.child({ node: this.identity.name })
    this.#pool = new WorkerPool(
      { node: this.identity.name, workers: this.config.workers, workersDir: this.config.workersDir },
      {
        logger: this.logger,
        slot: {
          logger: this.logger.child({ component: 'mesh:supervisor' }),
          node: this.identity.name,
          logLevel: this.config.logLevel,
          callTimeout: this.config.callTimeout,
          logSink: logSinkOf(root),
          onRequest: (_slot, request, respond, id) => serveThreadRequest(this.#threadHost, request, respond, id),
          onCache: (slot, key, value) => {
            if (value) this.#results.set(slot.name, slot.key, key, value)
            else this.#results.delete(slot.name, slot.key, key)
          },
        },
        serviceHost: (bound) => this.#serviceHost(bound),
        onChange: () => this.#publishSelf(),
      },
    )
    const [listenHost, listenPort] = splitHostPort(this.config.listen)
    this.#cluster = new Cluster(
      {
        identity: this.identity,
        cluster: this.config.cluster,
        secret: new Uint8Array(),
        listen: { host: listenHost, port: listenPort },
        seeds: this.config.join,
        mdns: this.config.mdns,
        mdnsInterface: this.config.interface,
        advertise: this.config.advertise,
        tls: this.config.tls,
        heartbeatInterval: this.config.heartbeatInterval,
        heartbeatTimeout: this.config.heartbeatTimeout,
        version: VERSION,
      },
      {
        logger: this.logger,
        describeSelf: () => this.#describeSelf(),
        serveCall: (message, fromClient) => this.#serveCall(message, fromClient),
        serveOp: (op, fromClient, node) => this.#serveOp(op, fromClient, node),
      },
    )
    this.#forwardRegistryEvents()
  }

  /** The configured (or host) name. */
  get name(): string {
    return this.identity.name
  }

  /** `name:incarnation`; the incarnation is new at every start. */
  get id(): string {
    return this.identity.id
  }

  /** The port links listen on (0 until started, and when standalone). */
  get port(): number {
    return this.#cluster.port
  }

  /**
   * Loads every configured worker and starts its instances, then (with a secret) starts
   * listening for links and discovering peers. Resolves when each worker has run `create`
   * (or crashed in it and is under supervision). Rejects with `ConfigError` if a module
   * cannot be loaded or exports no Worker; then nothing is left running.
   */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new Error(`node ${this.name} was already started`)
    this.#state = 'starting'
    try {
      const secret = await this.#readSecret()
      this.#enableDirectCalls(secret)
      await this.#pool.start()
      this.#scheduler = new Scheduler(this.config.schedules, (s) => this.#runSchedule(s), this.logger)
      this.#scheduler.start()
      this.#cluster.updateSelf()
      await this.#startCluster(secret)
    } catch (error) {
      this.#scheduler?.stop()
      await this.#pool.stop(2000)
      await this.#cluster.stop('start failed')
      this.#state = 'stopped'
      if (error instanceof WorkerLoadError) throw new ConfigError(error.message)
      throw error
    }
    this.#state = 'running'
    this.logger.info(
      { id: this.id, workers: this.#pool.allSlots().length, port: this.port || undefined },
      `node ${this.name} running`,
    )
  }

  /**
   * Graceful stop: tells peers its workers are stopping (so new calls go elsewhere), takes
   * no new calls, lets calls in flight finish, stops every worker (its `onStop` runs, its
   * connections close), says goodbye to its peers; all within `shutdownTimeout`. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop()
    return this.#stopped
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop()
  }

  /** Per-schedule counters (runs, skipped, failed), in config order. */
  scheduleStats(): Array<{ runs: number; skipped: number; failed: number }> {
    return this.#scheduler?.stats.map((s) => ({ ...s })) ?? []
  }

  worker(name: string, selector: WorkerSelector = {}): WorkerRef {
    const node = this
    return {
      async call<T>(method: string, arg?: unknown, options: CallOptions = {}): Promise<T> {
        if (selector.node === 'all') return (await node.#callAll(name, selector, method, packValue(arg), options)) as T
        const bytes = await node.#call(name, selector, method, packValue(arg), options.timeout, options.signal, true)
        return unpackTop(bytes) as T
      },
      async cast(method: string, arg?: unknown): Promise<void> {
        node.#cast(name, selector, method, packValue(arg), true)
      },
      async askResult<T>(key: string, options: WaitOptions = {}): Promise<T | undefined> {
        return (unpackFrame(await node.#askResult(name, selector, key, options.timeout)) as [T] | [])[0]
      },
      async delete(options: WaitOptions = {}): Promise<void> {
        await node.#delete(name, selector, options.timeout)
      },
      async info(): Promise<WorkerInfo[]> {
        return node
          .#workerInfos()
          .filter((w) => w.name === name && (selector.key === undefined || w.key === selector.key))
      },
    }
  }

  async newWorker(name: string, options: NewWorkerOptions): Promise<WorkerInfo> {
    this.#checkAccepting()
    if (typeof options.key !== 'string' || options.key.length === 0) {
      throw new InvalidArgumentError(`newWorker(${name}) needs a non-empty string key`)
    }
    const target = options.node === undefined ? undefined : this.#nodeByName(options.node)
    if (target && target.id !== this.id) {
      const bytes = await this.#cluster.op(
        target.id,
        { op: 'newWorker', target: name, key: options.key, data: packValue(options.data) },
        options.timeout ?? this.config.callTimeout,
      )
      return unpackFrame(bytes) as WorkerInfo
    }
    return this.#newLocalWorker(name, options.key, packValue(options.data))
  }

  async workers(_options?: WaitOptions): Promise<WorkerInfo[]> {
    return this.#workerInfos()
  }

  /** Every node in this node's view of the cluster, itself included. */
  async nodes(_options?: WaitOptions): Promise<NodeInfo[]> {
    return this.#cluster.registry.nodes().map((entry) => nodeInfo(entry, this.#cluster.rtt(entry.id)))
  }

  async services(_options?: WaitOptions): Promise<ServiceInfo[]> {
    return this.#cluster.registry.nodes().flatMap((entry) => entry.services.map((s) => serviceInfo(s, entry)))
  }

  async resolveService(name: string, options: ResolveServiceOptions = {}): Promise<ServiceInfo> {
    return this.#resolveService(name, options.node)
  }

  // --- workers -------------------------------------------------------------------------

  /** Publishes this node's entry once per tick, however many slots changed in it. */
  #publishSelf(): void {
    if (this.#publishScheduled) return
    this.#publishScheduled = true
    queueMicrotask(() => {
      this.#publishScheduled = false
      this.#cluster.updateSelf()
    })
  }

  #describeSelf(): Pick<NodeEntry, 'workers' | 'services'> {
    return this.#pool.describe(this.#state === 'stopping' || this.#state === 'stopped')
  }

  async #newLocalWorker(name: string, key: string, data: Uint8Array): Promise<WorkerInfo> {
    this.#checkAccepting()
    return this.#pool.newInstance(name, key, data)
  }

  #workerInfos(): WorkerInfo[] {
    return this.#cluster.registry.nodes().flatMap((entry) => entry.workers.map((w) => workerInfo(w, entry)))
  }

  // --- routing -------------------------------------------------------------------------

  #checkAccepting(): void {
    if (this.#state === 'stopping' || this.#state === 'stopped') {
      throw new NodeStoppingError(`node ${this.name} is shutting down and takes no new calls`)
    }
  }

  #nodeByName(node: string): NodeEntry {
    const entry = this.#cluster.registry.get(node) ?? this.#cluster.registry.byName(node)
    if (!entry) throw new NodeDownError(`node "${node}" is not in the cluster (as seen from ${this.name})`)
    return entry
  }

  /**
   * Picks where a call goes: a running local instance if there is one (round-robin over
   * unkeyed ones, or the keyed one), else a node whose registry entry lists one.
   */
  #route(name: string, selector: WorkerSelector, method: string, anyNode: boolean): Route {
    this.#checkAccepting()
    const matches = (w: { name: string; key: string | undefined; state: string }) =>
      runsWorker(w as Pick<WorkerEntry, 'name' | 'key' | 'state'>, name, selector.key)
    let onlyNode: NodeEntry | undefined
    if (selector.node !== undefined) onlyNode = this.#nodeByName(selector.node)
    if (onlyNode === undefined || onlyNode.id === this.id) {
      const running = this.#pool.slotsOf(name).filter((s) => matches({ name, key: s.key, state: s.state }))
      if (running.length > 0) {
        const slot = running[this.#turn(name) % running.length] as WorkerSlot
        if (!slot.hasMethod(method)) throw new NoSuchMethodError(`${name} has no public method "${method}"`)
        return { local: slot }
      }
    }
    if (anyNode && onlyNode?.id !== this.id) {
      const nodes = (onlyNode ? [onlyNode] : this.#cluster.registry.nodes()).filter(
        (entry) => entry.id !== this.id && entry.workers.some(matches),
      )
      if (nodes.length > 0) {
        const entry = nodes[this.#turn(`@${name}`) % nodes.length] as NodeEntry
        const worker = entry.workers.find(matches) as WorkerEntry
        if (!worker.methods.includes(method)) throw new NoSuchMethodError(`${name} has no public method "${method}"`)
        return { remote: entry }
      }
    }
    const what = selector.key !== undefined ? `${name} with key "${selector.key}"` : name
    const where = onlyNode ? `on node ${onlyNode.name}` : anyNode ? 'in the cluster' : `on node ${this.name}`
    throw new NoSuchWorkerError(`no running instance of ${what} ${where}`)
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

  #call(
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
    // Node timers turn delays above 2^31-1 ms into 1 ms; a timeout from the wire may be anything.
    const limit = Math.min(timeout ?? this.config.callTimeout, 2_147_483_647)
    if ('remote' in route) {
      return this.#track(
        this.#cluster.call(route.remote.id, {
          target: name,
          key: selector.key,
          method,
          arg,
          timeout: limit,
          cast: false,
        }),
      )
    }
    const slot = route.local
    const id = this.#nextCallId++
    return this.#track(
      new Promise<Uint8Array>((resolve, reject) => {
        let settled = false
        const finish = (): boolean => {
          if (settled) return false
          settled = true
          clearTimeout(timer)
          signal?.removeEventListener('abort', onAbort)
          return true
        }
        const timer = setTimeout(() => {
          slot.forget(id)
          if (finish()) reject(new TimeoutError(`call ${name}.${method} timed out after ${limit} ms`))
        }, limit)
        const onAbort = (): void => {
          slot.forget(id)
          if (finish()) reject(new TimeoutError(`call ${name}.${method} was aborted`))
        }
        signal?.addEventListener('abort', onAbort, { once: true })
        slot.dispatch(id, method, arg, false, {
          resolve: (value) => finish() && resolve(value),
          reject: (error) => finish() && reject(error),
        })
      }),
    )
  }

  #cast(name: string, selector: WorkerSelector, method: string, arg: Uint8Array, anyNode: boolean): void {
    const route = this.#route(name, selector, method, anyNode)
    if ('remote' in route) {
      void this.#cluster.call(route.remote.id, {
        target: name,
        key: selector.key,
        method,
        arg,
        timeout: this.config.callTimeout,
        cast: true,
      })
      return
    }
    route.local.dispatch(this.#nextCallId++, method, arg, true, undefined)
  }

  /** `node: 'all'`: the call on every node that runs the worker, one outcome per node. */
  async #callAll(
    name: string,
    selector: WorkerSelector,
    method: string,
    arg: Uint8Array,
    options: CallOptions,
  ): Promise<CallOutcome[]> {
    const nodes = nodesRunning(this.#cluster.registry.nodes(), name, selector.key)
    if (nodes.length === 0) throw new NoSuchWorkerError(`no running instance of ${name} in the cluster`)
    return callOnEachNode(nodes, async (entry) =>
      unpackTop(
        await this.#call(name, { ...selector, node: entry.id }, method, arg, options.timeout, options.signal, true),
      ),
    )
  }

  async #askResult(name: string, selector: WorkerSelector, key: string, timeout?: number): Promise<Uint8Array> {
    const local = this.#pool.slotsOf(name).some((s) => selector.key === undefined || s.key === selector.key)
    const onlyNode = selector.node === undefined ? undefined : this.#nodeByName(selector.node)
    if ((local && (!onlyNode || onlyNode.id === this.id)) || this.#pool.hasModule(name)) {
      const value = this.#results.get(name, selector.key, key)
      if (value || onlyNode?.id === this.id) return value ? Buffer.concat([FIXARRAY_1, value]) : FIXARRAY_0
    }
    const holder = (onlyNode ? [onlyNode] : this.#cluster.registry.nodes()).find(
      (entry) =>
        entry.id !== this.id &&
        entry.workers.some((w) => w.name === name && (selector.key === undefined || w.key === selector.key)),
    )
    if (!holder) {
      if (local || this.#pool.hasModule(name)) return FIXARRAY_0
      throw new NoSuchWorkerError(`no worker named "${name}" in the cluster`)
    }
    return this.#cluster.op(
      holder.id,
      { op: 'askResult', target: name, key: selector.key, entry: key },
      timeout ?? this.config.callTimeout,
    )
  }

  async #delete(name: string, selector: WorkerSelector, timeout?: number): Promise<void> {
    const slots = this.#pool.slotsOf(name).filter((s) => selector.key === undefined || s.key === selector.key)
    const onlyNode = selector.node === undefined ? undefined : this.#nodeByName(selector.node)
    if (slots.length > 0 && (!onlyNode || onlyNode.id === this.id)) {
      for (const slot of slots) this.#pool.remove(slot)
      await Promise.all(slots.map((s) => s.stop(this.config.shutdownTimeout)))
      for (const slot of slots) this.#results.drop(slot.name, slot.key)
      this.#publishSelf()
      return
    }
    const holder = (onlyNode ? [onlyNode] : this.#cluster.registry.nodes()).find(
      (entry) =>
        entry.id !== this.id &&
        entry.workers.some((w) => w.name === name && (selector.key === undefined || w.key === selector.key)),
    )
    const what = selector.key !== undefined ? `${name} with key "${selector.key}"` : name
    if (!holder) throw new NoSuchWorkerError(`no instance of ${what} in the cluster`)
    await this.#cluster.op(
      holder.id,
      { op: 'delete', target: name, key: selector.key },
      timeout ?? this.config.shutdownTimeout,
    )
  }

  #resolveService(name: string, node: string | undefined): ServiceInfo {
    const onlyNode = node === undefined ? undefined : this.#nodeByName(node)
    const entries = onlyNode ? [onlyNode] : this.#cluster.registry.nodes()
    const local = entries
      .filter((e) => e.id === this.id)
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

  /** The address to record for a published server: never a wildcard. */
  #serviceHost(bound: string): string {
    if (bound !== '0.0.0.0' && bound !== '::' && bound !== '') return bound
    return this.#cluster.self.addresses[0] ?? this.#addresses()[0] ?? '127.0.0.1'
  }

  async #runSchedule(schedule: NodeConfig['schedules'][number]): Promise<void> {
    await this.#call(
      schedule.worker,
      { key: schedule.key },
      schedule.method,
      packValue(schedule.data),
      schedule.timeout ?? this.config.callTimeout,
      undefined,
      false,
    )
  }

  // --- requests from threads, other nodes and clients ---------------------------------

  /** A call from another node runs here; a client's call may be routed anywhere. */
  #serveCall(message: Extract<ClusterMessage, { t: 'call' }>, fromClient: boolean): Promise<Uint8Array> {
    const selector: WorkerSelector = {
      key: message.key ?? undefined,
      node: fromClient ? (message.node ?? undefined) : undefined,
    }
    if (message.cast) {
      this.#cast(message.target, selector, message.method, message.arg, fromClient)
      return Promise.resolve(NIL)
    }
    return this.#call(message.target, selector, message.method, message.arg, message.timeout, undefined, fromClient)
  }

  async #serveOp(op: ClusterOp, fromClient: boolean, node: string | undefined): Promise<Uint8Array> {
    if (fromClient && node !== undefined) {
      const target = this.#nodeByName(node)
      if (target.id !== this.id) return this.#cluster.op(target.id, op, this.config.callTimeout)
    }
    switch (op.op) {
      case 'askResult':
        return this.#askResult(
          op.target,
          { key: op.key ?? undefined, node: fromClient ? undefined : this.id },
          op.entry,
        )
      case 'newWorker':
        return packValue(await this.#newLocalWorker(op.target, op.key, op.data))
      case 'delete':
        await this.#delete(op.target, { key: op.key ?? undefined, node: fromClient ? undefined : this.id })
        return NIL
      case 'ping':
        return packValue({ node: this.name, id: this.id, at: Date.now() })
      case 'stop':
        this.logger.warn({ reason: op.reason }, `stop requested remotely: ${op.reason}`)
        setImmediate(() => this.emit('stop-requested', op.reason))
        return NIL
    }
  }

  // --- cluster ---------------------------------------------------------------------------

  /** The cluster secret, or undefined when the node runs standalone. */
  async #readSecret(): Promise<Buffer | undefined> {
    if (this.config.secretFile === undefined) return undefined
    let secret: Buffer
    try {
      secret = Buffer.from((await readFile(this.config.secretFile, 'utf8')).trim(), 'utf8')
    } catch (error) {
      throw new ConfigError(`secretFile ${this.config.secretFile}: ${(error as NodeJS.ErrnoException).code ?? error}`)
    }
    if (secret.length < 16)
      throw new ConfigError(`secretFile ${this.config.secretFile}: the secret must be at least 16 characters`)
    return secret
  }

  async #startCluster(secret: Buffer | undefined): Promise<void> {
    if (secret === undefined) {
      this.logger.info('no secretFile configured: running standalone (links between nodes need a shared secret)')
      return
    }
    this.#cluster.setSecret(secret)
    await this.#cluster.start(this.#addresses())
  }

  /**
   * Lets worker threads call workers of other nodes over links of their own, which skips
   * both main threads (the largest cost of a call) and keeps the same authentication.
   */
  #enableDirectCalls(secret: Buffer | undefined): void {
    if (secret === undefined || !this.config.directCalls) return
    const [host] = splitHostPort(this.config.listen)
    this.#pool.enableDirectCalls({
      cluster: this.config.cluster,
      secret,
      tls: this.config.tls,
      host,
      heartbeatInterval: this.config.heartbeatInterval,
      heartbeatTimeout: this.config.heartbeatTimeout,
    })
    this.#cluster.registry.on('changed', () => this.#sendDirectory())
  }

  /** Sends every thread the current view, once per tick however many entries changed. */
  #sendDirectory(): void {
    if (this.#directoryScheduled) return
    this.#directoryScheduled = true
    queueMicrotask(() => {
      this.#directoryScheduled = false
      const message = {
        t: 'directory',
        self: this.id,
        nodes: directoryOf(this.#cluster.registry.nodes(), (e) => this.#cluster.hostOf(e)),
      } as const
      this.#pool.sendDirectory(message)
    })
  }

  /** Addresses other hosts can reach this node at. */
  #addresses(): string[] {
    return reachableAddresses(this.config.listen, this.config.advertise)
  }

  #forwardRegistryEvents(): void {
    forwardRegistryEvents(this.#cluster.registry, this, (id) => this.#cluster.rtt(id))
  }

  async #stop(): Promise<void> {
    if (this.#state === 'new') {
      this.#state = 'stopped'
      return
    }
    this.#state = 'stopping'
    const deadline = Date.now() + this.config.shutdownTimeout
    this.#scheduler?.stop()
    // Peers stop routing new calls here, while the link stays up for answers in flight.
    this.#cluster.updateSelf()
    if (this.#inFlight > 0) {
      this.logger.info({ inFlight: this.#inFlight }, `stopping: waiting for ${this.#inFlight} calls in flight`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()))
        this.#idleWaiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
    await this.#pool.stop(Math.max(1000, deadline - Date.now()))
    await this.#cluster.stop()
    this.#state = 'stopped'
    this.logger.info(`node ${this.name} stopped`)
  }
}
