import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { setTimeout as delay } from 'node:timers/promises'
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
import { waitWithDeadline } from '@wmesh/core/internal'
import { type Logger, pino } from 'pino'
import { callOnEachNode, nodesRunning } from './call-all.js'
import {
  type ClusterMessage,
  type ClusterOp,
  checkWireName,
  checkWorkerRef,
  PROTOCOL_VERSION,
  parseClusterMessage,
} from './cluster-protocol.js'
import { type Candidate, Discovery } from './discovery.js'
import type { Link } from './link.js'
import { dialLink } from './link-dial.js'
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
const MAX_TIMEOUT_MS = 2_147_483_647 - CALL_SLACK_MS

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
  readonly #logger: Logger
  readonly #baseLogger: Logger
  readonly #pending = new Map<number, Pending>()
  readonly #candidates = new Map<string, Candidate>()
  #discovery: Discovery | undefined
  #link: Link | undefined
  #linking: Promise<Link> | undefined
  #nextId = 1
  #closed = false
  /** Ids held before the current link's full view arrived; those not re-sent are gone. */
  #unconfirmed: Set<string> | undefined
  #synced: (() => void) | undefined
  #retryTimer: ReturnType<typeof setTimeout> | undefined
  /** Aborted by `close()`, to cut short the pause between rounds of dials. */
  readonly #stopping = new AbortController()
  #closing: Promise<void> | undefined
  readonly #connectTimeout: number
  readonly #callTimeout: number

  /** Throws `InvalidArgumentError` for a `timeout` or `callTimeout` that is not a number >= 0. */
  constructor(options: ConnectMeshOptions & { secret: Buffer }) {
    super()
    this.#options = options
    this.#connectTimeout = wholeMilliseconds('timeout', options.timeout ?? 10_000)
    this.#callTimeout = wholeMilliseconds('callTimeout', options.callTimeout ?? 10_000)
    this.id = `${options.name ?? 'client'}:${randomBytes(6).toString('hex')}`
    this.#baseLogger = options.logger ?? pino({ level: 'warn' })
    this.#logger = this.#baseLogger.child({ component: 'mesh:client' })
    forwardRegistryEvents(this.#registry, this, () => undefined)
  }

  /**
   * Finds a node and links with it. On failure (or `close()` meanwhile) the client is closed
   * before this rejects.
   */
  async connect(): Promise<void> {
    if (this.#closed) throw new NodeDownError('client is closed')
    try {
      await this.#startDiscovery()
      await this.#ensureLink()
    } catch (error) {
      // Discovery would keep proposing nodes, and each proposal would dial again, for a
      // client the caller never got to close.
      await this.close()
      throw error
    }
  }

  async #startDiscovery(): Promise<void> {
    const seeds = this.#options.join ?? []
    this.#discovery = new Discovery(
      {
        cluster: this.#options.cluster ?? 'wmesh',
        nodeId: this.id,
        nodeName: this.id,
        port: 0,
        protocolVersion: PROTOCOL_VERSION,
        mdns: this.#options.mdns ?? seeds.length === 0,
        interface: this.#options.interface,
        seeds,
        browseOnly: true,
      },
      { logger: this.#baseLogger },
    )
    this.#discovery.on('candidate', (c) => {
      this.#candidates.set(`${c.host}:${c.port}`, c)
      if (!this.#link && !this.#linking) void this.#ensureLink().catch(() => {})
    })
    this.#discovery.on('error', (error) => this.#logger.debug({ err: error.message }, 'discovery error'))
    await this.#discovery.start()
  }

  /** Resolves once the linked node has sent its whole view (or after `timeout` ms). */
  #waitSynced(timeout: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, timeout)
      function done(): void {
        clearTimeout(timer)
        resolve()
      }
      this.#synced = done
    })
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
    this.#closed = true
    this.#stopping.abort()
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer)
    // A link in its sync wait will never sync now: do not hold the closing for its timer.
    this.#synced?.()
    await this.#discovery?.stop()
    const link = this.#link
    this.#link = undefined
    if (link && !link.closed) {
      const closed = new Promise<void>((resolve) => link.once('close', () => resolve()))
      link.close()
      await closed
    }
    this.#failPending('client closed')
    // A dial that resolves after this point sees #closed and ends its link; wait for it.
    await this.#linking?.catch(() => {})
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  /** The node this client is linked with. */
  get linkedNode(): string | undefined {
    return this.#link?.peerId
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
    const link = this.#link
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
    if (this.#link && !this.#link.closed && !signal?.aborted) return Promise.resolve(this.#link)
    return waitWithDeadline<Link>(what, { signal }, (resolve, reject) => {
      const cluster = this.#options.cluster ?? 'wmesh'
      const message = `${what}: no node of cluster "${cluster}" answered within ${timeout} ms; the client keeps looking, try again`
      const timer = setTimeout(() => reject(new NodeDownError(message)), timeout)
      this.#ensureLink().then(resolve, reject)
      return () => clearTimeout(timer)
    })
  }

  /** The current link, or a new one to the first candidate node that answers. */
  #ensureLink(): Promise<Link> {
    if (this.#closed) return Promise.reject(new NodeDownError('client is closed'))
    if (this.#link && !this.#link.closed) return Promise.resolve(this.#link)
    this.#linking ??= this.#findLink().finally(() => {
      this.#linking = undefined
    })
    return this.#linking
  }

  async #findLink(): Promise<Link> {
    const deadline = Date.now() + this.#connectTimeout
    let lastError: Error | undefined
    while (Date.now() < deadline && !this.#closed) {
      const candidates = [
        ...this.#registry.nodes().flatMap((e) => e.addresses.map((host) => ({ host, port: e.port }))),
        ...this.#candidates.values(),
      ]
      for (const { host, port } of candidates) {
        if (this.#closed) break
        try {
          const link = await this.#dial(host, port)
          if (this.#closed) {
            // close() ran during the dial and knows nothing of this link: end it here.
            link.destroy()
            break
          }
          await this.#adopt(link)
          // close() during the sync wait closes the adopted link itself.
          if (this.#closed) break
          return link
        } catch (error) {
          lastError = error as Error
          // A wrong secret or cluster name is refused by every node alike: say so now.
          const code = (error as { code?: string }).code
          if (code === 'ERR_AUTH' || code === 'ERR_HANDSHAKE') throw error
        }
      }
      // Nothing answered yet: wait for discovery to propose more, a little at a time.
      await delay(200, undefined, { signal: this.#stopping.signal }).catch(() => {})
    }
    if (this.#closed) throw new NodeDownError('client is closed')
    throw new NodeDownError(
      `cannot reach any node of cluster "${this.#options.cluster ?? 'wmesh'}"${lastError ? `: ${lastError.message}` : ' (none found)'}`,
      { cause: lastError },
    )
  }

  #dial(host: string, port: number): Promise<Link> {
    const secret = this.#options.secret
    const cluster = this.#options.cluster ?? 'wmesh'
    return dialLink(
      { host, port, tls: this.#options.tls ?? false, connectTimeout: 3000 },
      { role: 'dialer', cluster, secret, localId: this.id, localKind: 'client' },
      { logger: this.#baseLogger },
    )
  }

  #adopt(link: Link): Promise<void> {
    this.#link = link
    this.#unconfirmed = new Set(this.#registry.nodes().map((e) => e.id))
    const synced = this.#waitSynced(3000)
    link.on('message', (raw) => {
      const message = parseClusterMessage(raw)
      if (!message) return
      switch (message.t) {
        case 'entry':
          this.#unconfirmed?.delete(message.entry.id)
          this.#registry.apply(message.entry)
          return
        case 'synced':
          // What we knew before this link and its node did not re-send has left the view.
          for (const id of this.#unconfirmed ?? []) this.#registry.remove(id, `not in the view of ${link.peerId}`)
          this.#unconfirmed = undefined
          this.#synced?.()
          return
        case 'gone':
          this.#registry.remove(message.id, message.reason)
          return
        case 'result': {
          const pending = this.#pending.get(message.id)
          if (!pending) return
          this.#pending.delete(message.id)
          if (message.ok) pending.resolve(message.value)
          else pending.reject(rebuildError(message.error))
          return
        }
        default:
          return
      }
    })
    link.once('close', (error) => {
      if (this.#link !== link) return
      this.#link = undefined
      const reason = `link to ${link.peerId} closed${error ? `: ${error.message}` : ''}`
      this.#failPending(reason)
      this.emit('link:down', link.peerId, reason)
      // The linked node may be down, or only our link. Its entry goes now; the rest is checked
      // against the next node's full view.
      this.#registry.remove(link.peerId, 'link lost')
      this.#relink()
    })
    this.emit('link:up', link.peerId)
    return synced
  }

  /** Keeps trying to link with some node until it works or the client is closed. */
  #relink(): void {
    if (this.#closed || this.#retryTimer !== undefined) return
    this.#ensureLink().catch(() => {
      if (this.#closed) return
      this.#retryTimer = setTimeout(() => {
        this.#retryTimer = undefined
        this.#relink()
      }, 1000)
    })
  }

  #failPending(reason: string): void {
    for (const [id, pending] of this.#pending) {
      pending.reject(new NodeDownError(reason))
      this.#pending.delete(id)
    }
  }
}
