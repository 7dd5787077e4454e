import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import {
  type CallOptions,
  type CallOutcome,
  InvalidArgumentError,
  type Mesh,
  type NewWorkerOptions,
  NodeDownError,
  type NodeInfo,
  NoSuchServiceError,
  NoSuchWorkerError,
  packValue,
  type ResolveServiceOptions,
  type ServiceInfo,
  unpackFrame,
  type WaitOptions,
  type WorkerInfo,
  type WorkerRef,
  type WorkerSelector,
} from '@wmesh/core'
import { MAX_TIMER_MS, waitWithDeadline } from '@wmesh/core/internal'
import { type Logger, pino } from 'pino'
import { callOnEachNode, nodesRunning } from './call-all.js'
import { ClientLinker } from './client-link.js'
import { type ClusterMessage, type ClusterOp, checkWireName, checkWorkerRef } from './cluster-protocol.js'
import type { Link } from './link.js'
import { type MeshEvents, nodeInfo, serviceInfo, workerInfo } from './mesh-types.js'
import { Registry } from './registry.js'
import { forwardRegistryEvents } from './registry-events.js'
import { rebuildError } from './remote-error.js'
import { readSecretFile } from './secret-file.js'
import { unpackTop } from './values.js'

/** Options of `connectMesh`. */
export interface ConnectMeshOptions {
  /** Cluster name (default 'wmesh'). */
  cluster?: string
  /** The cluster secret, or `secretFile`. */
  secret?: string | Uint8Array
  secretFile?: string
  /** Seeds `host:port`. */
  join?: string[]
  /** Find nodes by mDNS (default: when no seeds are given). */
  mdns?: boolean
  /** IPv4 address of the interface for mDNS. */
  interface?: string
  tls?: boolean
  /** Milliseconds to find and link with a node (default 10 s); then `NodeDownError`. */
  timeout?: number
  /**
   * Default call timeout (default 10 s). It also bounds how long `cast`, which takes no
   * options, waits for a link.
   */
  callTimeout?: number
  logger?: Logger
  /** Prefix of the client id other nodes see in their logs (default 'client'). */
  name?: string
}

interface Pending {
  resolve(value: Uint8Array): void
  reject(error: Error): void
}

/** How long a request may take, waiting for a link included, and what ends it early. */
interface RequestDeadline {
  /** Milliseconds from the request; the node enforces them for a call. */
  timeout: number
  /** Extra ms the client waits for the node's answer beyond `timeout`. */
  slack: number
  signal?: AbortSignal | undefined
}

/** The client waits this long beyond a call's timeout: the node enforces the timeout and answers. */
const CALL_SLACK_MS = 1000

/** Longest timeout accepted: Node timers take at most 2^31-1 ms, and calls add their slack. */
const MAX_TIMEOUT_MS = MAX_TIMER_MS - CALL_SLACK_MS

/**
 * `value` as a timeout the client can send and wait on: rounded up to whole ms (a node drops
 * a call whose timeout is not an integer as malformed) and capped at `MAX_TIMEOUT_MS` (a
 * longer delay makes a Node timer fire at once).
 *
 * @throws InvalidArgumentError for anything but a finite number >= 0.
 */
function wholeMilliseconds(what: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new InvalidArgumentError(
      `${what} must be a finite number of milliseconds >= 0, got ${typeof value === 'string' ? `"${value}"` : String(value)}`,
    )
  }
  return Math.min(Math.ceil(value), MAX_TIMEOUT_MS)
}

/**
 * Joins a cluster as a client: finds a node (seeds or mDNS), authenticates with the cluster
 * secret, and offers the `Mesh` API. A client hosts nothing and is never listed as a node.
 * If its node goes away it links with another one it knows.
 */
export async function connectMesh(options: ConnectMeshOptions): Promise<MeshClient> {
  const secret =
    options.secret !== undefined
      ? Buffer.from(options.secret)
      : options.secretFile !== undefined
        ? await readSecretFile(options.secretFile)
        : undefined
  if (!secret || secret.length === 0)
    throw new InvalidArgumentError('connectMesh needs the cluster secret (secret or secretFile)')
  const client = new MeshClient({ ...options, secret })
  await client.connect()
  return client
}

/** A program's handle on the cluster; see `connectMesh`. */
export class MeshClient extends EventEmitter<MeshEvents> implements Mesh {
  readonly id: string
  readonly #options: ConnectMeshOptions & { secret: Buffer }
  readonly #registry = new Registry()
  readonly #linker: ClientLinker
  readonly #pending = new Map<number, Pending>()
  #nextId = 1
  #closing: Promise<void> | undefined
  readonly #callTimeout: number

  /** Throws `InvalidArgumentError` for a `timeout` or `callTimeout` that is not a number >= 0. */
  constructor(options: ConnectMeshOptions & { secret: Buffer }) {
    super()
    this.#options = options
    const connectTimeout = wholeMilliseconds('timeout', options.timeout ?? 10_000)
    this.#callTimeout = wholeMilliseconds('callTimeout', options.callTimeout ?? 10_000)
    this.id = `${options.name ?? 'client'}:${randomBytes(6).toString('hex')}`
    this.#linker = new ClientLinker(
      {
        id: this.id,
        cluster: options.cluster ?? 'wmesh',
        secret: options.secret,
        join: options.join,
        mdns: options.mdns,
        interface: options.interface,
        tls: options.tls ?? false,
        connectTimeout,
      },
      {
        logger: options.logger ?? pino({ level: 'warn' }),
        registry: this.#registry,
        result: (message) => this.#settle(message),
        up: (peerId) => this.emit('link:up', peerId),
        down: (peerId, reason) => {
          this.#failPending(reason)
          this.emit('link:down', peerId, reason)
        },
      },
    )
    forwardRegistryEvents(this.#registry, this, () => undefined)
  }

  /**
   * Finds a node and links with it. On failure (or `close()` meanwhile) the client is closed
   * before this rejects.
   */
  async connect(): Promise<void> {
    if (this.#closing !== undefined) throw new NodeDownError('client is closed')
    try {
      await this.#linker.start()
      await this.#linker.ensure()
    } catch (error) {
      // Discovery would keep proposing nodes, and each proposal would dial again, for a
      // client the caller never got to close.
      await this.close()
      throw error
    }
  }

  /**
   * Closes the link and discovery, and fails the requests in flight with `NodeDownError`.
   * Resolves once nothing of the client is left, a dial in flight included. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown()
    return this.#closing
  }

  async #shutdown(): Promise<void> {
    // The link closes without reporting it down: the requests on it fail as 'client closed'.
    await this.#linker.stop()
    this.#failPending('client closed')
    await this.#linker.settled()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  /** The node this client is linked with. */
  get linkedNode(): string | undefined {
    return this.#linker.link?.peerId
  }

  worker(name: string, selector: WorkerSelector = {}): WorkerRef {
    checkWorkerRef(name, selector.key)
    const client = this
    const deadlineOf = (options: WaitOptions) => ({
      timeout: client.#timeoutOf(options, client.#callTimeout),
      signal: options.signal,
    })
    return {
      async call<T>(method: string, arg?: unknown, options: CallOptions = {}): Promise<T> {
        checkWireName('method', method)
        // Checked here too, so a bad timeout fails the call rather than each node's outcome.
        const timeout = client.#timeoutOf(options, client.#callTimeout)
        if (selector.node === 'all') return (await client.#callAll(name, selector, method, arg, options)) as T
        const bytes = await client.#request(
          (id, left) => ({
            t: 'call',
            id,
            target: name,
            key: selector.key,
            method,
            arg: packValue(arg),
            timeout: left,
            cast: false,
            node: selector.node,
          }),
          `call ${name}.${method}`,
          { timeout, slack: CALL_SLACK_MS, signal: options.signal },
        )
        return unpackTop(bytes) as T
      },
      async cast(method: string, arg?: unknown): Promise<void> {
        checkWireName('method', method)
        const link = await client.#linkWithin(`cast ${name}.${method}`, client.#callTimeout)
        link.send({
          t: 'call',
          id: client.#nextId++,
          target: name,
          key: selector.key,
          method,
          arg: packValue(arg),
          timeout: 0,
          cast: true,
          node: selector.node,
        } satisfies ClusterMessage)
      },
      async askResult<T>(key: string, options: WaitOptions = {}): Promise<T | undefined> {
        const bytes = await client.#op(
          { op: 'askResult', target: name, key: selector.key, entry: key },
          deadlineOf(options),
          selector.node,
        )
        return (unpackFrame(bytes) as [T] | [])[0]
      },
      async delete(options: WaitOptions = {}): Promise<void> {
        await client.#op({ op: 'delete', target: name, key: selector.key }, deadlineOf(options), selector.node)
      },
      async info(): Promise<WorkerInfo[]> {
        return (await client.workers()).filter(
          (w) => w.name === name && (selector.key === undefined || w.key === selector.key),
        )
      },
    }
  }

  async newWorker(name: string, options: NewWorkerOptions): Promise<WorkerInfo> {
    checkWorkerRef(name, options.key)
    const bytes = await this.#op(
      { op: 'newWorker', target: name, key: options.key, data: packValue(options.data) },
      { timeout: this.#timeoutOf(options, this.#callTimeout), signal: options.signal },
      options.node,
    )
    return unpackFrame(bytes) as WorkerInfo
  }

  async workers(): Promise<WorkerInfo[]> {
    return this.#registry.nodes().flatMap((entry) => entry.workers.map((w) => workerInfo(w, entry)))
  }

  async nodes(): Promise<NodeInfo[]> {
    const link = this.#linker.link
    return this.#registry.nodes().map((entry) => nodeInfo(entry, entry.id === link?.peerId ? link.rtt : undefined))
  }

  async services(): Promise<ServiceInfo[]> {
    return this.#registry.nodes().flatMap((entry) => entry.services.map((s) => serviceInfo(s, entry)))
  }

  async resolveService(name: string, options: ResolveServiceOptions = {}): Promise<ServiceInfo> {
    const all = (await this.services()).filter(
      (s) => s.name === name && (options.node === undefined || s.node === options.node),
    )
    if (all.length === 0) throw new NoSuchServiceError(`no server is published as "${name}"`)
    return all[Math.floor(Math.random() * all.length)] as ServiceInfo
  }

  /** Round trip to a node (by name or id) through the linked node, in ms. */
  async ping(node: string, options: WaitOptions = {}): Promise<number> {
    const started = performance.now()
    await this.#op({ op: 'ping' }, { timeout: this.#timeoutOf(options, 5000), signal: options.signal }, node)
    return performance.now() - started
  }

  /** Asks a node to stop gracefully. */
  async stopNode(node: string, reason: string, options: WaitOptions = {}): Promise<void> {
    await this.#op({ op: 'stop', reason }, { timeout: this.#timeoutOf(options, 5000), signal: options.signal }, node)
  }

  async #callAll(
    name: string,
    selector: WorkerSelector,
    method: string,
    arg: unknown,
    options: CallOptions,
  ): Promise<CallOutcome[]> {
    const nodes = nodesRunning(this.#registry.nodes(), name, selector.key)
    if (nodes.length === 0) throw new NoSuchWorkerError(`no running instance of ${name} in the cluster`)
    return callOnEachNode(nodes, (entry) =>
      this.worker(name, { key: selector.key, node: entry.id }).call(method, arg, options),
    )
  }

  /** A per-call timeout as whole ms, or `fallback`; throws `InvalidArgumentError` for a bad one. */
  #timeoutOf(options: WaitOptions, fallback: number): number {
    return options.timeout === undefined ? fallback : wholeMilliseconds('timeout', options.timeout)
  }

  #op(op: ClusterOp, deadline: Omit<RequestDeadline, 'slack'>, node: string | undefined): Promise<Uint8Array> {
    // An op carries no timeout to the node: the client's own wait is its only bound.
    return this.#request((id) => ({ t: 'op', id, op, node }), op.op, { ...deadline, slack: 0 })
  }

  /**
   * Sends what `build` makes and resolves to the node's answer. `build` gets the ms left of
   * the timeout once a link is there: the wait for one counts against the request's time.
   */
  async #request(
    build: (id: number, left: number) => ClusterMessage,
    what: string,
    { timeout, slack, signal }: RequestDeadline,
  ): Promise<Uint8Array> {
    const started = performance.now()
    const link = await this.#linkWithin(what, timeout, signal)
    // Rounded down: a link that was there at once leaves the caller's timeout as it was.
    const left = Math.max(0, timeout - Math.floor(performance.now() - started))
    const id = this.#nextId++
    return waitWithDeadline<Uint8Array>(what, { timeout: left + slack, signal }, (resolve, reject) => {
      this.#pending.set(id, { resolve, reject })
      try {
        link.send(build(id, left))
      } catch (error) {
        reject(error as Error)
      }
      return () => this.#pending.delete(id)
    })
  }

  /**
   * The link, waiting for one at most `timeout` ms (a call's own, not the longer connect
   * timeout) and until `signal` aborts. Fails with `NodeDownError`, the error of every other
   * wait of the client for a node (connect, relink, a link lost mid-call), not
   * `TimeoutError`: nothing was sent, no node answered.
   */
  #linkWithin(what: string, timeout: number, signal?: AbortSignal): Promise<Link> {
    const current = this.#linker.link
    if (current && !current.closed && !signal?.aborted) return Promise.resolve(current)
    return waitWithDeadline<Link>(what, { signal }, (resolve, reject) => {
      const cluster = this.#options.cluster ?? 'wmesh'
      const message = `${what}: no node of cluster "${cluster}" answered within ${timeout} ms; the client keeps looking, try again`
      const timer = setTimeout(() => reject(new NodeDownError(message)), timeout)
      this.#linker.ensure().then(resolve, reject)
      return () => clearTimeout(timer)
    })
  }

  /** Settles the request a node's answer is for, if it is still waiting. */
  #settle(message: Extract<ClusterMessage, { t: 'result' }>): void {
    const pending = this.#pending.get(message.id)
    if (!pending) return
    this.#pending.delete(message.id)
    if (message.ok) pending.resolve(message.value)
    else pending.reject(rebuildError(message.error))
  }

  #failPending(reason: string): void {
    for (const [id, pending] of this.#pending) {
      pending.reject(new NodeDownError(reason))
      this.#pending.delete(id)
    }
  }
}
