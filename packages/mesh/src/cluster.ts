import { EventEmitter } from 'node:events'
import type { Server, Socket } from 'node:net'
import { ListenError, NodeDownError, TimeoutError } from '@wmesh/core'
import type { Logger } from 'pino'
import {
  type ClusterMessage,
  type ClusterOp,
  type NodeEntry,
  PROTOCOL_VERSION,
  parseClusterMessage,
} from './cluster-protocol.js'
import { type Candidate, Discovery } from './discovery.js'
import type { NodeIdentity } from './identity.js'
import { Link, type LinkInit } from './link.js'
import { createLinkServer, dialLink } from './link-dial.js'
import { Registry } from './registry.js'
import { rebuildError, relayError, type SerializedError } from './remote-error.js'

/** How the cluster layer is set up. */
export interface ClusterInit {
  identity: NodeIdentity
  cluster: string
  secret: Uint8Array
  /** `host:port` to listen on for links. */
  listen: { host: string; port: number }
  seeds: string[]
  mdns: boolean
  mdnsInterface: string | undefined
  advertise: string | undefined
  tls: boolean
  heartbeatInterval: number
  heartbeatTimeout: number
  version: string
}

/** What the cluster layer asks of its node. */
export interface ClusterComponents {
  logger: Logger
  /** The node's own entry as it is now (without id/rev bookkeeping). */
  describeSelf(): Pick<NodeEntry, 'workers' | 'services'>
  /** Serves a call from another node or a client; resolves to the encoded result. */
  serveCall(message: Extract<ClusterMessage, { t: 'call' }>, fromClient: boolean): Promise<Uint8Array>
  /** Serves an operation from another node or a client. */
  serveOp(op: ClusterOp, fromClient: boolean, node: string | undefined): Promise<Uint8Array>
}

interface Pending {
  resolve(value: Uint8Array): void
  reject(error: Error): void
  timer: ReturnType<typeof setTimeout> | undefined
}

interface DialState {
  inFlight: boolean
  failures: number
  nextAt: number
}

const DIGEST_INTERVAL = 1000
const MAX_TIMER_MS = 2_147_483_647
const MAX_REDIAL_DELAY = 30_000
const REDIAL_FOR = 24 * 60 * 60 * 1000

/**
 * The cluster layer of a node: listens for links, dials what discovery proposes and the
 * peers it has lost (backoff with jitter), keeps one link per peer, exchanges registry
 * entries, and carries calls between nodes. A call in flight on a link that drops fails
 * with `NodeDownError` at once.
 */
export class Cluster extends EventEmitter<{ ready: [] }> {
  readonly registry = new Registry()
  #init: ClusterInit
  readonly #components: ClusterComponents
  readonly #logger: Logger
  /** The node's logger without a component, for components that name themselves. */
  readonly #baseLogger: Logger
  readonly #links = new Map<string, Link>()
  readonly #clients = new Set<Link>()
  readonly #pending = new Map<Link, Map<number, Pending>>()
  readonly #dials = new Map<string, DialState>()
  /** Addresses that turned out to be ourselves. */
  readonly #selfAddresses = new Set<string>()
  /** Where lost peers were, to keep redialing them. */
  readonly #lost = new Map<string, { since: number; name: string }>()
  #server: Server | undefined
  #discovery: Discovery | undefined
  #timers: Array<ReturnType<typeof setInterval>> = []
  #self: NodeEntry
  #nextId = 1
  #stopping = false
  port = 0

  constructor(init: ClusterInit, components: ClusterComponents) {
    super()
    this.#init = init
    this.#components = components
    this.#baseLogger = components.logger
    this.#logger = components.logger.child({ component: 'mesh:cluster' })
    const { identity } = init
    this.#self = {
      id: identity.id,
      name: identity.name,
      incarnation: identity.incarnation,
      startedAt: identity.startedAt,
      version: init.version,
      addresses: [],
      port: 0,
      rev: 0,
      workers: [],
      services: [],
    }
  }

  /** The cluster secret; set before `start`. */
  setSecret(secret: Uint8Array): void {
    this.#init = { ...this.#init, secret }
  }

  get self(): NodeEntry {
    return this.#self
  }

  /** Node ids with a live link. */
  get peers(): string[] {
    return [...this.#links.keys()]
  }

  /**
   * The address to reach a node's other ports at (its workers' direct ports): the one its
   * link runs over when the node advertises it, else its first advertised address.
   * Undefined for a node with no link.
   */
  hostOf(entry: NodeEntry): string | undefined {
    if (entry.id === this.#init.identity.id) return entry.addresses[0] ?? this.#init.listen.host
    const link = this.#links.get(entry.id)
    if (!link) return undefined
    const remote = link.remoteAddress.replace(/^::ffff:/, '')
    return entry.addresses.length === 0 || entry.addresses.includes(remote) ? remote : entry.addresses[0]
  }

  /** Round-trip time of the link to a peer, from its heartbeats. */
  rtt(peerId: string): number | undefined {
    return this.#links.get(peerId)?.rtt
  }

  async start(addresses: string[]): Promise<void> {
    const server = createLinkServer(
      this.#init.tls ? this.#init : undefined,
      (socket) => this.#accept(socket),
      (error, socket) =>
        this.#logger.warn({ peer: socket.remoteAddress, err: error.message }, 'refused TLS link: handshake failed'),
    )
    server.maxConnections = 4096
    const { host, port } = this.#init.listen
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) =>
        reject(new ListenError(`cannot listen for links on ${host}:${port}: ${error.code ?? error.message}`)),
      )
      server.listen({ host, port }, () => resolve())
    })
    server.on('error', (error) => this.#logger.error({ err: error }, `link server error: ${error.message}`))
    this.#server = server
    this.port = (server.address() as { port: number }).port
    this.#self = { ...this.#self, addresses, port: this.port }
    this.updateSelf()
    this.#timers.push(setInterval(() => this.#broadcastDigest(), DIGEST_INTERVAL))
    this.#timers.push(setInterval(() => this.#redialLost(), 1000))
    const discovery = new Discovery(
      {
        cluster: this.#init.cluster,
        nodeId: this.#init.identity.id,
        nodeName: this.#init.identity.name,
        port: this.port,
        protocolVersion: PROTOCOL_VERSION,
        mdns: this.#init.mdns,
        interface: this.#init.mdnsInterface,
        advertise: this.#init.advertise,
        seeds: this.#init.seeds,
      },
      { logger: this.#baseLogger },
    )
    discovery.on('candidate', (candidate) => this.#onCandidate(candidate))
    discovery.on('error', (error) => this.#logger.warn({ err: error.message }, `discovery: ${error.message}`))
    this.#discovery = discovery
    await discovery.start()
  }

  /** Republishes this node's entry (workers or services changed). */
  updateSelf(): void {
    const { workers, services } = this.#components.describeSelf()
    this.#self = { ...this.#self, workers, services, rev: this.#self.rev + 1 }
    this.registry.apply(this.#self)
    const message: ClusterMessage = { t: 'entry', entry: this.#self }
    for (const link of this.#links.values()) this.#send(link, message)
    for (const client of this.#clients) this.#send(client, message)
  }

  /** Sends a call to a peer; resolves to its encoded result. */
  call(peerId: string, call: Omit<Extract<ClusterMessage, { t: 'call' }>, 't' | 'id'>): Promise<Uint8Array> {
    return this.#request(
      peerId,
      (id) => ({ t: 'call', id, ...call }),
      call.cast ? undefined : call.timeout,
      `${call.target}.${call.method}`,
    )
  }

  /** Sends an operation to a peer; resolves to its encoded result. */
  op(peerId: string, op: ClusterOp, timeout: number, node?: string): Promise<Uint8Array> {
    return this.#request(peerId, (id) => ({ t: 'op', id, op, node }), timeout, op.op)
  }

  /** Stops: says goodbye to every peer, closes links, stops discovery. Idempotent. */
  async stop(reason = 'node stopping'): Promise<void> {
    if (this.#stopping) return
    this.#stopping = true
    for (const timer of this.#timers) clearInterval(timer)
    this.#timers = []
    await this.#discovery?.stop()
    const closed: Array<Promise<void>> = []
    for (const link of [...this.#links.values(), ...this.#clients]) {
      this.#send(link, { t: 'bye', reason })
      closed.push(new Promise<void>((resolve) => (link.closed ? resolve() : link.once('close', () => resolve()))))
      link.close()
    }
    this.#server?.close()
    const timer = setTimeout(() => {
      for (const link of [...this.#links.values(), ...this.#clients]) link.destroy()
    }, 2000)
    await Promise.all(closed)
    clearTimeout(timer)
  }

  #linkInit(role: LinkInit['role']): LinkInit {
    return {
      role,
      cluster: this.#init.cluster,
      secret: this.#init.secret,
      localId: this.#init.identity.id,
      localKind: 'node',
      heartbeatInterval: this.#init.heartbeatInterval,
      heartbeatTimeout: this.#init.heartbeatTimeout,
    }
  }

  #accept(socket: Socket): void {
    if (this.#stopping) {
      socket.destroy()
      return
    }
    const from = `${socket.remoteAddress}:${socket.remotePort}`
    Link.establish(socket, this.#linkInit('acceptor'), { logger: this.#baseLogger }).then(
      (link) => this.#adopt(link),
      // The link layer has logged the refusal once, with its reason.
      (error: Error) =>
        this.#logger.debug(
          { peer: from, code: (error as { code?: string }).code },
          `refused link from ${from}: ${error.message}`,
        ),
    )
  }

  #onCandidate(candidate: Candidate): void {
    if (this.#stopping) return
    if (candidate.nodeId === this.#init.identity.id) return
    if (candidate.nodeId && this.#links.has(candidate.nodeId)) return
    this.#dial(candidate.host, candidate.port)
  }

  /** Seeds usually list every node, this one included: never dial ourselves. */
  #isSelf(host: string, port: number): boolean {
    if (port !== this.port) return false
    const listen = this.#init.listen.host
    if (host === listen || this.#self.addresses.includes(host)) return true
    return (listen === '0.0.0.0' || listen === '::') && /^(127\.|::1$|localhost$)/.test(host)
  }

  #dial(host: string, port: number): void {
    const address = `${host}:${port}`
    if (this.#selfAddresses.has(address) || this.#isSelf(host, port)) return
    for (const link of this.#links.values()) {
      const entry = this.registry.get(link.peerId)
      if (entry && entry.port === port && entry.addresses.includes(host)) return
    }
    const state = this.#dials.get(address) ?? { inFlight: false, failures: 0, nextAt: 0 }
    this.#dials.set(address, state)
    if (state.inFlight || Date.now() < state.nextAt) return
    state.inFlight = true
    dialLink({ host, port, tls: this.#init.tls, connectTimeout: 5000 }, this.#linkInit('dialer'), {
      logger: this.#baseLogger,
    }).then(
      (link) => {
        state.inFlight = false
        state.failures = 0
        this.#adopt(link)
      },
      (error: Error & { code?: string }) => {
        state.inFlight = false
        state.failures++
        if (/our own id|ourselves/i.test(error.message)) {
          this.#selfAddresses.add(address)
          return
        }
        const delay = Math.min(MAX_REDIAL_DELAY, 250 * 2 ** Math.min(state.failures, 10))
        state.nextAt = Date.now() + delay * (0.75 + Math.random() * 0.5)
        // Handshake failures were logged by the link layer; say once that a peer is unreachable.
        const handshake = error.code?.startsWith('ERR_HANDSHAKE') || error.code === 'ERR_AUTH'
        const level = state.failures === 1 && !handshake ? 'warn' : 'debug'
        this.#logger[level](
          { peer: address, code: error.code, failures: state.failures },
          `cannot link to ${address}: ${error.message}`,
        )
      },
    )
  }

  #adopt(link: Link): void {
    if (this.#stopping) {
      link.close()
      return
    }
    if (link.peerKind === 'client') {
      this.#clients.add(link)
      link.on('message', (raw) => this.#onMessage(link, raw))
      link.once('close', () => {
        this.#clients.delete(link)
        this.#failPending(link, 'client disconnected')
      })
      for (const entry of this.registry.nodes()) this.#send(link, { t: 'entry', entry })
      this.#send(link, { t: 'synced' })
      return
    }
    const peerId = link.peerId
    const peerName = peerId.slice(0, peerId.lastIndexOf(':'))
    if (peerName === this.#init.identity.name) {
      this.#logger.error(
        { peer: peerId },
        `refused link: node ${peerId} uses this node's name "${peerName}"; ${peerId > this.#init.identity.id ? 'it is the newer incarnation, so other nodes will prefer it' : 'this node is the newer incarnation'}`,
      )
      link.close()
      return
    }
    // Of two live incarnations of one name, keep the newer (ids sort by start time).
    for (const [otherId, other] of this.#links) {
      if (otherId === peerId || otherId.slice(0, otherId.lastIndexOf(':')) !== peerName) continue
      if (otherId > peerId) {
        this.#logger.warn(
          { peer: peerId, newer: otherId },
          `refused link: ${peerId} is an older incarnation of ${otherId}`,
        )
        link.close()
        return
      }
      this.#logger.warn({ peer: otherId, newer: peerId }, `dropping ${otherId}: ${peerId} is a newer incarnation`)
      this.#links.delete(otherId)
      other.close()
      this.#nodeDown(otherId, `replaced by a newer incarnation (${peerId})`)
    }
    const existing = this.#links.get(peerId)
    if (existing) {
      // Simultaneous dials: both sides keep the link dialed by the smaller node id.
      const dialerOf = (l: Link) =>
        l === link
          ? link.role === 'dialer'
            ? this.#init.identity.id
            : peerId
          : existing.role === 'dialer'
            ? this.#init.identity.id
            : peerId
      const keepNew = dialerOf(link) < dialerOf(existing)
      const loser = keepNew ? existing : link
      this.#logger.debug({ peer: peerId }, 'closing duplicate link')
      if (!keepNew) {
        loser.close()
        return
      }
      this.#links.delete(peerId)
      loser.close()
    }
    this.#links.set(peerId, link)
    link.on('message', (raw) => this.#onMessage(link, raw))
    link.once('close', (error) => this.#onLinkClosed(link, error))
    this.#send(link, { t: 'entry', entry: this.#self })
    this.#logger.info({ peer: peerId, address: `${link.remoteAddress}:${link.remotePort}` }, `linked with ${peerId}`)
  }

  #onLinkClosed(link: Link, error: Error | undefined): void {
    this.#failPending(link, error?.message ?? 'link closed')
    if (this.#links.get(link.peerId) !== link) return
    this.#links.delete(link.peerId)
    const entry = this.registry.get(link.peerId)
    if (entry && !this.#stopping) {
      for (const address of entry.addresses)
        this.#lost.set(`${address}:${entry.port}`, { since: Date.now(), name: entry.name })
    }
    this.#nodeDown(link.peerId, error ? error.message : 'link closed')
  }

  #nodeDown(peerId: string, reason: string): void {
    if (!this.registry.remove(peerId, reason)) return
    this.#logger.warn({ peer: peerId, reason }, `node ${peerId} is down: ${reason}`)
    for (const client of this.#clients) this.#send(client, { t: 'gone', id: peerId, reason })
  }

  #failPending(link: Link, reason: string): void {
    const pending = this.#pending.get(link)
    if (!pending) return
    this.#pending.delete(link)
    for (const call of pending.values()) {
      if (call.timer) clearTimeout(call.timer)
      call.reject(new NodeDownError(`${link.peerId} went down before answering (${reason})`))
    }
  }

  #redialLost(): void {
    const now = Date.now()
    // Dial states of addresses nobody proposes any more (no failure for an hour) go.
    for (const [address, state] of this.#dials) {
      if (!state.inFlight && now - state.nextAt > 60 * 60 * 1000) this.#dials.delete(address)
    }
    for (const [address, { since }] of this.#lost) {
      if (now - since > REDIAL_FOR) {
        this.#lost.delete(address)
        continue
      }
      const at = address.lastIndexOf(':')
      this.#dial(address.slice(0, at), Number(address.slice(at + 1)))
    }
  }

  #broadcastDigest(): void {
    const message: ClusterMessage = { t: 'digest', id: this.#self.id, rev: this.#self.rev }
    for (const link of this.#links.values()) this.#send(link, message)
  }

  #send(link: Link, message: ClusterMessage): void {
    if (link.closed) return
    try {
      link.send(message)
    } catch (error) {
      this.#logger.debug({ peer: link.peerId, err: (error as Error).message }, 'send on a closing link dropped')
    }
  }

  /** Sends a result; one that cannot be sent (too large, say) goes back as that error instead. */
  #reply(link: Link, id: number, value: Uint8Array): void {
    if (link.closed) return
    try {
      link.send({ t: 'result', id, ok: true, value } satisfies ClusterMessage)
    } catch (error) {
      this.#send(link, { t: 'result', id, ok: false, error: relayError(error) })
    }
  }

  #request(
    peerId: string,
    build: (id: number) => ClusterMessage,
    timeout: number | undefined,
    what: string,
  ): Promise<Uint8Array> {
    const link = this.#links.get(peerId)
    if (!link) return Promise.reject(new NodeDownError(`no link to ${peerId}`))
    const id = this.#nextId++
    const message = build(id)
    if (timeout === undefined) {
      try {
        link.send(message)
      } catch (error) {
        return Promise.reject(error)
      }
      return Promise.resolve(new Uint8Array())
    }
    return new Promise<Uint8Array>((resolve, reject) => {
      let pending = this.#pending.get(link)
      if (!pending) {
        pending = new Map()
        this.#pending.set(link, pending)
      }
      const table = pending
      const timer = setTimeout(
        () => {
          table.delete(id)
          reject(new TimeoutError(`${what} on ${peerId} timed out after ${timeout} ms`))
        },
        Math.min(timeout, MAX_TIMER_MS),
      )
      table.set(id, { resolve, reject, timer })
      try {
        link.send(message)
      } catch (error) {
        // Too large, not encodable, queue full or link closing: say so now, not at the deadline.
        clearTimeout(timer)
        table.delete(id)
        reject(error)
      }
    })
  }

  #onMessage(link: Link, raw: unknown): void {
    const message = parseClusterMessage(raw)
    if (!message) {
      this.#logger.warn({ peer: link.peerId }, `dropping malformed message from ${link.peerId}`)
      return
    }
    const fromClient = link.peerKind === 'client'
    switch (message.t) {
      case 'entry':
        if (fromClient || message.entry.id !== link.peerId) return
        // Linked again (perhaps at another port, as a new incarnation): stop redialing where it used to be.
        for (const [address, lost] of this.#lost) if (lost.name === message.entry.name) this.#lost.delete(address)
        if (this.registry.apply(message.entry)) {
          for (const client of this.#clients) this.#send(client, message)
        }
        return
      case 'digest': {
        const known = this.registry.get(message.id)
        if (!fromClient && message.id === link.peerId && (!known || known.rev < message.rev))
          this.#send(link, { t: 'want' })
        return
      }
      case 'want':
        this.#send(link, { t: 'entry', entry: this.#self })
        return
      case 'call':
        // A cast that cannot be routed throws synchronously; it must not escape into the
        // link's listener, which would tear the link down.
        Promise.resolve()
          .then(() => this.#components.serveCall(message, fromClient))
          .then(
            (value) => !message.cast && this.#reply(link, message.id, value),
            (error: unknown) => {
              if (!message.cast) this.#send(link, { t: 'result', id: message.id, ok: false, error: relayError(error) })
              else this.#logger.debug({ peer: link.peerId, err: (error as Error).message }, 'cast from a peer dropped')
            },
          )
        return
      case 'op':
        Promise.resolve()
          .then(() => this.#components.serveOp(message.op, fromClient, message.node ?? undefined))
          .then(
            (value) => this.#reply(link, message.id, value),
            (error: unknown) => this.#send(link, { t: 'result', id: message.id, ok: false, error: relayError(error) }),
          )
        return
      case 'result': {
        const call = this.#pending.get(link)?.get(message.id)
        if (!call) return
        this.#pending.get(link)?.delete(message.id)
        if (call.timer) clearTimeout(call.timer)
        if (message.ok) call.resolve(message.value)
        else call.reject(rebuildError(message.error as SerializedError))
        return
      }
      case 'bye':
        if (!fromClient) this.#nodeDown(link.peerId, `left: ${message.reason}`)
        link.close()
        return
      case 'gone':
      case 'synced':
        return
    }
  }
}
