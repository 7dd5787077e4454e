import { EventEmitter } from 'node:events'
import { hostname } from 'node:os'
import {
  type CallOptions,
  InvalidArgumentError,
  type Mesh,
  type NewWorkerOptions,
  NodeStoppingError,
  packValue,
  type ResolveServiceOptions,
  type ServiceInfo,
  unpackFrame,
  type WaitOptions,
  type WorkerInfo,
  type WorkerRef,
  type WorkerSelector,
} from '@wmesh/core'
import { MAX_TIMER_MS } from '@wmesh/core/internal'
import type { Logger } from 'pino'
import { CallRouter } from './call-router.js'
import { Cluster } from './cluster.js'
import { type ClusterOp, checkWorkerRef, type NodeEntry } from './cluster-protocol.js'
import { ConfigError, type NodeConfig, type NodeConfigInput, parseNodeConfig } from './config.js'
import { directoryOf } from './direct-router.js'
import { type NodeIdentity, newIdentity } from './identity.js'
import { createNodeLogger, logSinkOf } from './logger.js'
import { type MeshEvents, type NodeInfo, nodeInfo, serviceInfo, workerInfo } from './mesh-types.js'
import { reachableAddresses, sanitizeHostname, splitHostPort } from './node-addresses.js'
import { forwardRegistryEvents } from './registry-events.js'
import { ResultStore } from './result-cache.js'
import { Scheduler } from './scheduler.js'
import { readSecretFile, worldReadableMode } from './secret-file.js'
import { serveThreadRequest, type ThreadRequestHost } from './thread-requests.js'
import { NIL, unpackTop } from './values.js'
import { WorkerPool } from './worker-pool.js'
import { WorkerLoadError } from './worker-slot.js'

/** Injected dependencies of a node. */
export interface MeshNodeComponents {
  /** Root logger (default: `createNodeLogger` at the configured level). */
  logger?: Logger
}

const VERSION = '0.1.0'
/** Least silence that ends a direct link between worker threads. */
const DIRECT_LIVENESS_MS = 30_000
/** Default suspectTimeout, in heartbeatTimeouts: outlasts TCP back-off stalls of 4-5 lost packets in a row. */
const SUSPECT_FACTOR = 5

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
  readonly #pool: WorkerPool
  readonly #cluster: Cluster
  readonly #router: CallRouter
  #scheduler: Scheduler | undefined
  #state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new'
  #stopped: Promise<void> | undefined
  #starting: Promise<void> | undefined
  #publishScheduled = false
  #directoryScheduled = false
  /** What worker threads' requests are served with: this node, on encoded values. */
  readonly #threadHost: ThreadRequestHost = {
    call: (name, selector, method, arg, timeout) =>
      this.#router.call(name, selector, method, arg, timeout, undefined, true),
    callAll: (name, selector, method, arg, options) => this.#router.callAll(name, selector, method, arg, options),
    cast: (name, selector, method, arg) => this.#router.cast(name, selector, method, arg, true),
    askResult: (name, selector, key) => this.#router.askResult(name, selector, key),
    newWorker: (name, options) => this.newWorker(name, options),
    delete: (name, selector) => this.#router.delete(name, selector),
    workerInfos: () => this.#workerInfos(),
    resolveService: (name, node) => this.#router.resolveService(name, node),
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
            // A deleted instance still stopping must not write into its successor's cache.
            if (!this.#pool.has(slot)) return
            if (!value) this.#results.delete(slot.name, slot.key, key)
            else if (!this.#results.set(slot.name, slot.key, key, value))
              this.logger.warn(
                { worker: slot.label, key, bytes: value.length },
                `${slot.label}: cache value "${key}" of ${value.length} bytes is larger than a worker may keep; not stored`,
              )
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
        suspectTimeout: Math.max(
          this.config.heartbeatTimeout,
          this.config.suspectTimeout ?? SUSPECT_FACTOR * this.config.heartbeatTimeout,
        ),
        version: VERSION,
      },
      {
        logger: this.logger,
        describeSelf: () => this.#describeSelf(),
        serveCall: (message, fromClient) => this.#router.serveCall(message, fromClient),
        serveOp: (op, fromClient, node) => this.#serveOp(op, fromClient, node),
      },
    )
    this.#router = new CallRouter(
      {
        id: this.identity.id,
        name: this.identity.name,
        callTimeout: this.config.callTimeout,
        shutdownTimeout: this.config.shutdownTimeout,
      },
      {
        registry: this.#cluster.registry,
        cluster: this.#cluster,
        pool: this.#pool,
        results: this.#results,
        stopping: () => this.#stopping(),
        onChange: () => this.#publishSelf(),
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
    this.#starting = this.#start()
    return this.#starting
  }

  /** Throws once `stop()` has been called during `start()`; the stop cleans up. */
  #checkStillStarting(): void {
    if (this.#state !== 'starting') throw new NodeStoppingError(`node ${this.name} was stopped while starting`)
  }

  async #start(): Promise<void> {
    try {
      const secret = await this.#readSecret()
      this.#checkStillStarting()
      this.#enableDirectCalls(secret)
      await this.#pool.start()
      this.#checkStillStarting()
      this.#checkScheduledWorkers()
      this.#scheduler = new Scheduler(
        this.config.schedules,
        (s) => this.#runSchedule(s),
        this.config.callTimeout,
        this.logger,
      )
      this.#scheduler.start()
      this.#cluster.updateSelf()
      await this.#startCluster(secret)
      this.#checkStillStarting()
    } catch (error) {
      if (this.#state !== 'starting') throw new NodeStoppingError(`node ${this.name} was stopped while starting`)
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
    checkWorkerRef(name, selector.key)
    const node = this
    return {
      async call<T>(method: string, arg?: unknown, options: CallOptions = {}): Promise<T> {
        const router = node.#router
        if (selector.node === 'all') return (await router.callAll(name, selector, method, packValue(arg), options)) as T
        const bytes = await router.call(name, selector, method, packValue(arg), options.timeout, options.signal, true)
        return unpackTop(bytes) as T
      },
      async cast(method: string, arg?: unknown): Promise<void> {
        node.#router.cast(name, selector, method, packValue(arg), true)
      },
      async askResult<T>(key: string, options: WaitOptions = {}): Promise<T | undefined> {
        return (unpackFrame(await node.#router.askResult(name, selector, key, options.timeout)) as [T] | [])[0]
      },
      async delete(options: WaitOptions = {}): Promise<void> {
        await node.#router.delete(name, selector, options.timeout)
      },
      async info(): Promise<WorkerInfo[]> {
        return node
          .#workerInfos()
          .filter((w) => w.name === name && (selector.key === undefined || w.key === selector.key))
      },
    }
  }

  async newWorker(name: string, options: NewWorkerOptions): Promise<WorkerInfo> {
    this.#router.checkAccepting()
    if (typeof options.key !== 'string' || options.key.length === 0) {
      throw new InvalidArgumentError(`newWorker(${name}) needs a non-empty string key`)
    }
    checkWorkerRef(name, options.key)
    const target = options.node === undefined ? undefined : this.#router.nodeByName(options.node)
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
    return this.#router.resolveService(name, options.node)
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
    return this.#pool.describe(this.#stopping())
  }

  /** A stopping node takes no new calls and publishes no service. */
  #stopping(): boolean {
    return this.#state === 'stopping' || this.#state === 'stopped'
  }

  async #newLocalWorker(name: string, key: string, data: Uint8Array): Promise<WorkerInfo> {
    this.#router.checkAccepting()
    return this.#pool.newInstance(name, key, data)
  }

  #workerInfos(): WorkerInfo[] {
    return this.#cluster.registry.nodes().flatMap((entry) => entry.workers.map((w) => workerInfo(w, entry)))
  }

  /** The address to record for a published server: never a wildcard. */
  #serviceHost(bound: string): string {
    if (bound !== '0.0.0.0' && bound !== '::' && bound !== '') return bound
    return this.#cluster.self.addresses[0] ?? this.#addresses()[0] ?? '127.0.0.1'
  }

  /** Schedules call this node's own workers: one naming a worker it does not have could never run. */
  #checkScheduledWorkers(): void {
    this.config.schedules.forEach((schedule, index) => {
      if (this.#pool.hasModule(schedule.worker)) return
      throw new ConfigError(
        `key "schedules.${index}.worker": this node has no worker "${schedule.worker}" (schedules call the node's own workers)`,
      )
    })
  }

  /**
   * One scheduled call, settling when the worker has finished it however long it takes: the
   * scheduler reports a run past its timeout, and must not start the next beside it.
   */
  async #runSchedule(schedule: NodeConfig['schedules'][number]): Promise<void> {
    await this.#router.call(
      schedule.worker,
      { key: schedule.key },
      schedule.method,
      packValue(schedule.data),
      MAX_TIMER_MS,
      undefined,
      false,
    )
  }

  // --- requests from threads, other nodes and clients ---------------------------------

  async #serveOp(op: ClusterOp, fromClient: boolean, node: string | undefined): Promise<Uint8Array> {
    if (fromClient && node !== undefined) {
      const target = this.#router.nodeByName(node)
      if (target.id !== this.id) return this.#cluster.op(target.id, op, this.config.callTimeout)
    }
    switch (op.op) {
      case 'askResult':
        return this.#router.askResult(
          op.target,
          { key: op.key ?? undefined, node: fromClient ? undefined : this.id },
          op.entry,
        )
      case 'newWorker':
        return packValue(await this.#newLocalWorker(op.target, op.key, op.data))
      case 'delete':
        await this.#router.delete(op.target, { key: op.key ?? undefined, node: fromClient ? undefined : this.id })
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
    const path = this.config.secretFile
    if (path === undefined) return undefined
    const secret = await readSecretFile(path)
    const mode = await worldReadableMode(path)
    if (mode !== undefined) {
      this.logger.warn(
        { secretFile: path, mode },
        `secretFile ${path} is readable by every user of this host: chmod 600 it`,
      )
    }
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
      nodeId: this.id,
      cluster: this.config.cluster,
      secret,
      tls: this.config.tls,
      host,
      heartbeatInterval: this.config.heartbeatInterval,
      // A worker's own heartbeats stop while its method computes; that is not a failure.
      // Whether a node is down is the node links' verdict (heartbeatTimeout), which reaches
      // the threads as a new view; direct links only end dead sockets, late.
      heartbeatTimeout: Math.max(DIRECT_LIVENESS_MS, 10 * this.config.heartbeatTimeout),
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
    const wasStarting = this.#state === 'starting'
    this.#state = 'stopping'
    const deadline = Date.now() + this.config.shutdownTimeout
    // Kept for stopping the workers, however long calls in flight take.
    const reserve = Math.min(1000, this.config.shutdownTimeout / 2)
    if (wasStarting) {
      // Workers still in create() are stopped, which lets start() see the stop and give up.
      await this.#pool.stop(Math.max(reserve, deadline - Date.now()))
      await this.#starting?.catch(() => {})
    }
    this.#scheduler?.stop()
    // Peers stop routing new calls here, while the link stays up for answers in flight.
    this.#cluster.updateSelf()
    const inFlight = this.#router.inFlight
    if (inFlight > 0) {
      this.logger.info({ inFlight }, `stopping: waiting for ${inFlight} calls in flight`)
      await this.#router.idle(Math.max(0, deadline - reserve - Date.now()))
    }
    await this.#pool.stop(Math.max(reserve, deadline - Date.now()))
    await this.#cluster.stop()
    this.#state = 'stopped'
    this.logger.info(`node ${this.name} stopped`)
  }
}
