import { EventEmitter } from 'node:events'
import type { Server, Socket } from 'node:net'
import { ListenError } from '@wmesh/core'
import type { Logger } from 'pino'
import {
  type ClusterMessage,
  type ClusterOp,
  type NodeEntry,
  PROTOCOL_VERSION,
  parseClusterMessage,
} from './cluster-protocol.js'
import { Discovery } from './discovery.js'
import { type NodeIdentity, parseNodeId } from './identity.js'
import { Link, type LinkComponents, type LinkInit } from './link.js'
import { createLinkServer, dialLink } from './link-dial.js'
import { PeerDialer } from './peer-dialer.js'
import { PeerWitnesses } from './peer-witnesses.js'
import { Registry } from './registry.js'
import { RegistrySync } from './registry-sync.js'
import { Relinker } from './relinker.js'
import { RemoteRequests } from './remote-requests.js'

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
  /** A link silent past heartbeatTimeout lives on while other nodes hear its peer, up to this (ms). */
  suspectTimeout: number
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

const DIGEST_INTERVAL = 1000

/**
 * The cluster layer of a node: listens for links, dials what discovery proposes and the
 * peers it has lost (backoff with jitter), keeps one link per peer, exchanges registry
 * entries, and carries calls between nodes. A call in flight on a link that drops fails
 * with `NodeDownError` at once.
 *
 * The dialing is PeerDialer's, the registry exchange RegistrySync's, the calls
 * RemoteRequests'; this class owns the links, the timers and the order of start and stop.
 */
export class Cluster extends EventEmitter<{ ready: [] }> {
  readonly registry = new Registry()
  #init: ClusterInit
  readonly #logger: Logger
  /** The node's logger without a component, for components that name themselves. */
  readonly #baseLogger: Logger
  readonly #links = new Map<string, Link>()
  readonly #clients = new Set<Link>()
  /** Sockets, accepted or dialed, whose handshake has not settled: a stop ends them. */
  readonly #handshaking = new Set<Socket>()
  readonly #sync: RegistrySync
  readonly #requests: RemoteRequests
  readonly #dialer: PeerDialer
  readonly #witnesses: PeerWitnesses
  readonly #relinker: Relinker
  #server: Server | undefined
  #discovery: Discovery | undefined
  #timers: Array<ReturnType<typeof setInterval>> = []
  #stopping = false
  port = 0

  constructor(init: ClusterInit, components: ClusterComponents) {
    super()
    this.#init = init
    this.#baseLogger = components.logger
    this.#logger = components.logger.child({ component: 'mesh:cluster' })
    const send = (link: Link, message: ClusterMessage): void => this.#send(link, message)
    this.#sync = new RegistrySync(
      { identity: init.identity, version: init.version },
      {
        logger: this.#logger,
        registry: this.registry,
        links: this.#links,
        clients: this.#clients,
        send,
        describeSelf: () => components.describeSelf(),
      },
    )
    this.#requests = new RemoteRequests({
      logger: this.#logger,
      links: this.#links,
      send,
      serveCall: (message, fromClient) => components.serveCall(message, fromClient),
      serveOp: (op, fromClient, node) => components.serveOp(op, fromClient, node),
    })
    this.#witnesses = new PeerWitnesses({
      links: this.#links,
      send,
      heartbeatTimeout: init.heartbeatTimeout,
    })
    const dial = (host: string, port: number): Promise<Link> =>
      dialLink(
        { host, port, tls: this.#init.tls, connectTimeout: 5000, handshaking: this.#handshaking },
        this.#linkInit('dialer'),
        this.#linkComponents,
      )
    this.#relinker = new Relinker({
      logger: this.#logger,
      id: init.identity.id,
      links: this.#links,
      registry: this.registry,
      dial,
      install: (link, ...first) => {
        this.#install(link)
        if (first.length > 0) this.#onMessage(link, first[0])
      },
      adopt: (link) => this.#adopt(link),
      settleDuplicate: (link, first) => this.#settleDuplicate(link, first),
      send,
      lingerMs: init.suspectTimeout,
      retryMs: init.heartbeatTimeout,
      stopping: () => this.#stopping,
    })
    this.#dialer = new PeerDialer(
      { id: init.identity.id, listenHost: init.listen.host },
      {
        logger: this.#logger,
        links: this.#links,
        registry: this.registry,
        self: () => this.#sync.self,
        dial,
        adopt: (link) => this.#adopt(link),
        stopping: () => this.#stopping,
      },
    )
  }

  /** The cluster secret; set before `start`. */
  setSecret(secret: Uint8Array): void {
    this.#init = { ...this.#init, secret }
  }

  get self(): NodeEntry {
    return this.#sync.self
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
    this.#sync.listening(addresses, this.port)
    this.updateSelf()
    this.#timers.push(setInterval(() => this.#sync.broadcastDigest(), DIGEST_INTERVAL))
    this.#timers.push(setInterval(() => this.#dialer.redial(), 1000))
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
    discovery.on('candidate', (candidate) => this.#dialer.onCandidate(candidate))
    discovery.on('error', (error) => this.#logger.warn({ err: error.message }, `discovery: ${error.message}`))
    this.#discovery = discovery
    await discovery.start()
  }

  /** Republishes this node's entry (workers or services changed). */
  updateSelf(): void {
    this.#sync.updateSelf()
  }

  /** Sends a call to a peer; resolves to its encoded result. */
  call(peerId: string, call: Omit<Extract<ClusterMessage, { t: 'call' }>, 't' | 'id'>): Promise<Uint8Array> {
    return this.#requests.call(peerId, call)
  }

  /** Sends a cast to a peer now; throws what keeps it from leaving. */
  cast(peerId: string, call: Omit<Extract<ClusterMessage, { t: 'call' }>, 't' | 'id' | 'cast'>): void {
    this.#requests.cast(peerId, call)
  }

  /** Sends an operation to a peer; resolves to its encoded result. */
  op(peerId: string, op: ClusterOp, timeout: number, node?: string): Promise<Uint8Array> {
    return this.#requests.op(peerId, op, timeout, node)
  }

  /** Stops: says goodbye to every peer, closes links, stops discovery. Idempotent. */
  async stop(reason = 'node stopping'): Promise<void> {
    if (this.#stopping) return
    this.#stopping = true
    for (const timer of this.#timers) clearInterval(timer)
    this.#timers = []
    await this.#discovery?.stop()
    const closed: Array<Promise<void>> = []
    const spare = this.#relinker.spare
    for (const link of [...this.#links.values(), ...this.#clients, ...spare]) {
      if (!spare.includes(link)) this.#send(link, { t: 'bye', reason })
      closed.push(new Promise<void>((resolve) => (link.closed ? resolve() : link.once('close', () => resolve()))))
      link.close()
    }
    // After the closes: a question settled now finds its link closed, not "not heard".
    this.#witnesses.stop()
    const serverClosed = new Promise<void>((resolve) =>
      this.#server ? this.#server.close(() => resolve()) : resolve(),
    )
    // Handshakes under way would otherwise run to their deadline (5 s) after the stop.
    for (const socket of this.#handshaking) socket.destroy()
    this.#handshaking.clear()
    const timer = setTimeout(() => {
      for (const link of [...this.#links.values(), ...this.#clients, ...spare]) link.destroy()
    }, 2000)
    await Promise.all(closed)
    clearTimeout(timer)
    // Every socket it accepted is closed by now; the listener itself goes within a tick.
    let late: NodeJS.Timeout | undefined
    await Promise.race([serverClosed, new Promise<void>((resolve) => (late = setTimeout(resolve, 1000)))])
    clearTimeout(late)
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
      suspectTimeout: this.#init.suspectTimeout,
    }
  }

  /**
   * A silent node link asks the other peers before it gives up (a retired one asks its
   * successor); client links have nobody to ask.
   */
  get #linkComponents(): LinkComponents {
    return {
      logger: this.#baseLogger,
      stillHeard: (link, within) => {
        const current = this.#links.get(link.peerId)
        if (this.#stopping || current === undefined) return Promise.resolve(false)
        if (current !== link) return Promise.resolve(current.silentFor < this.#init.heartbeatTimeout)
        return this.#witnesses.stillHeard(link.peerId, within)
      },
    }
  }

  #accept(socket: Socket): void {
    if (this.#stopping) {
      socket.destroy()
      return
    }
    const from = `${socket.remoteAddress}:${socket.remotePort}`
    this.#handshaking.add(socket)
    Link.establish(socket, this.#linkInit('acceptor'), this.#linkComponents)
      .finally(() => this.#handshaking.delete(socket))
      .then(
        (link) => this.#adopt(link),
        // The link layer has logged the refusal once, with its reason.
        (error: Error) =>
          this.#logger.debug(
            { peer: from, code: (error as { code?: string }).code },
            `refused link from ${from}: ${error.message}`,
          ),
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
        this.#requests.failPending(link, 'client disconnected')
      })
      this.#sync.syncClient(link)
      return
    }
    const peerId = link.peerId
    const peerName = peerId.slice(0, peerId.lastIndexOf(':'))
    // An id is name:incarnation, neither holding a colon: anything else could pass for
    // another node's name (n1:x:y reads as name "n1:x" here and "n1" in an entry).
    if (parseNodeId(peerId) === undefined || peerName.includes(':')) {
      this.#logger.warn({ peer: peerId }, `refused link: "${peerId}" is not a node id (name:incarnation)`)
      link.close()
      return
    }
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
      this.#sync.nodeDown(otherId, `replaced by a newer incarnation (${peerId})`)
    }
    if (this.#links.has(peerId) && link.role === 'acceptor') {
      // A relink, or the other of two simultaneous dials: its first message tells.
      this.#relinker.hold(link)
      return
    }
    this.#settleDuplicate(link)
  }

  /**
   * Keeps one link per peer: of two simultaneous dials, both sides keep the one dialed by
   * the smaller node id; a new link replaces a silent one. `first` is a held link's first
   * message, handled if it stays.
   */
  #settleDuplicate(link: Link, ...first: [unknown] | []): void {
    const peerId = link.peerId
    const existing = this.#links.get(peerId)
    if (existing) {
      const dialerOf = (l: Link) => (l.role === 'dialer' ? this.#init.identity.id : peerId)
      // A peer dials only when it has no link to us: if ours has gone silent, it dropped
      // its end (and simultaneous dials are both fresh, so this does not break their tie).
      const keepNew = existing.silentFor >= this.#init.heartbeatTimeout || dialerOf(link) < dialerOf(existing)
      this.#logger.debug({ peer: peerId }, 'closing duplicate link')
      if (!keepNew) {
        link.close()
        return
      }
      this.#links.delete(peerId)
      existing.close()
    }
    this.#install(link)
    if (first.length > 0) this.#onMessage(link, first[0])
  }

  /** Makes `link` the peer's link: messages, close, stalls; sends our entry. */
  #install(link: Link): void {
    const peerId = link.peerId
    this.#links.set(peerId, link)
    // The node is back (maybe at a new address): stop redialing where it was, now rather
    // than when its entry arrives, or a redial in between fails and warns for nothing.
    this.#dialer.found(peerId.slice(0, peerId.lastIndexOf(':')))
    link.on('message', (raw) => this.#onMessage(link, raw))
    link.once('close', (error) => this.#onLinkClosed(link, error))
    link.on('suspect', () => this.#relinker.stalled(link))
    this.#sync.sendSelf(link)
    this.#logger.info({ peer: peerId, address: `${link.remoteAddress}:${link.remotePort}` }, `linked with ${peerId}`)
  }

  #onLinkClosed(link: Link, error: Error | undefined): void {
    this.#requests.failPending(link, error?.message ?? 'link closed')
    if (this.#links.get(link.peerId) !== link) return
    this.#links.delete(link.peerId)
    const back = this.#relinker.reinstate(link.peerId)
    if (back) {
      this.#links.set(link.peerId, back)
      this.#logger.info(
        { peer: link.peerId, reason: error?.message },
        `back on the previous link to ${link.peerId}: the new one closed`,
      )
      return
    }
    const entry = this.registry.get(link.peerId)
    if (entry) this.#dialer.lost(entry)
    this.#sync.nodeDown(link.peerId, error ? error.message : 'link closed')
  }

  #send(link: Link, message: ClusterMessage): void {
    if (link.closed) return
    try {
      link.send(message)
    } catch (error) {
      this.#logger.debug({ peer: link.peerId, err: (error as Error).message }, 'send on a closing link dropped')
    }
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
        // A peer speaks for itself only; clients publish nothing.
        if (fromClient || message.entry.id !== link.peerId) return
        this.#dialer.found(message.entry.name)
        this.#sync.onEntry(message)
        return
      case 'digest':
        if (!fromClient && message.id === link.peerId) this.#sync.onDigest(link, message)
        return
      case 'want':
        this.#sync.sendSelf(link)
        return
      case 'call':
        this.#requests.onCall(link, message, fromClient)
        return
      case 'op':
        this.#requests.onOp(link, message, fromClient)
        return
      case 'result':
        this.#requests.onResult(link, message)
        return
      case 'bye':
        if (!fromClient) this.#sync.nodeDown(link.peerId, `left: ${message.reason}`)
        link.close()
        return
      case 'suspect':
        if (!fromClient) this.#witnesses.onSuspect(link, message)
        return
      case 'relink':
      case 'relinked':
        // Only as a link's first message (the relinker reads those); later, nothing to do.
        return
      case 'heard':
        if (!fromClient) this.#witnesses.onHeard(link, message)
        return
      case 'gone':
      case 'synced':
        return
    }
  }
}
