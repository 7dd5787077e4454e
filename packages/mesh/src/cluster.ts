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
import type { NodeIdentity } from './identity.js'
import { Link, type LinkInit } from './link.js'
import { createLinkServer, dialLink } from './link-dial.js'
import { peerHost } from './node-addresses.js'
import { PeerDialer } from './peer-dialer.js'
import { PeerLinks } from './peer-links.js'
import { Registry } from './registry.js'
import { RegistrySync } from './registry-sync.js'
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
 * The node links are PeerLinks', the dialing PeerDialer's, the registry exchange
 * RegistrySync's, the calls RemoteRequests'; this class owns the listener, the client
 * links, the timers and the order of start and stop.
 */
export class Cluster extends EventEmitter<{ ready: [] }> {
  readonly registry = new Registry()
  #init: ClusterInit
  readonly #logger: Logger
  /** The node's logger without a component, for components that name themselves. */
  readonly #baseLogger: Logger
  readonly #peers: PeerLinks
  readonly #links: ReadonlyMap<string, Link>
  readonly #clients = new Set<Link>()
  /** Sockets, accepted or dialed, whose handshake has not settled: a stop ends them. */
  readonly #handshaking = new Set<Socket>()
  readonly #sync: RegistrySync
  readonly #requests: RemoteRequests
  readonly #dialer: PeerDialer
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
    const dial = (host: string, port: number): Promise<Link> =>
      dialLink(
        { host, port, tls: this.#init.tls, connectTimeout: 5000, handshaking: this.#handshaking },
        this.#linkInit('dialer'),
        this.#peers.linkComponents,
      )
    this.#peers = new PeerLinks(init, {
      logger: this.#logger,
      linkLogger: this.#baseLogger,
      registry: this.registry,
      dial,
      send,
      onMessage: (link, raw) => this.#onMessage(link, raw),
      onLinked: (link) => {
        // The node is back (maybe at a new address): stop redialing where it was, now rather
        // than when its entry arrives, or a redial in between fails and warns for nothing.
        this.#dialer.found(link.peerId.slice(0, link.peerId.lastIndexOf(':')))
        this.#sync.sendSelf(link)
      },
      onClosed: (link, error) => this.#requests.failPending(link, error?.message ?? 'link closed'),
      onDown: (peerId, reason, lost) => {
        const entry = lost ? this.registry.get(peerId) : undefined
        if (entry) this.#dialer.lost(entry)
        this.#sync.nodeDown(peerId, reason)
      },
      stopping: () => this.#stopping,
    })
    this.#links = this.#peers.links
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
    return link ? peerHost(entry.addresses, link.remoteAddress) : undefined
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

  /** Sends a call to a peer; resolves to its encoded result (`AbortError` once `signal` aborts). */
  call(
    peerId: string,
    call: Omit<Extract<ClusterMessage, { t: 'call' }>, 't' | 'id'>,
    signal?: AbortSignal,
  ): Promise<Uint8Array> {
    return this.#requests.call(peerId, call, signal)
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
    const spare = this.#peers.spare
    for (const link of [...this.#links.values(), ...this.#clients, ...spare]) {
      if (!spare.includes(link)) this.#send(link, { t: 'bye', reason })
      closed.push(new Promise<void>((resolve) => (link.closed ? resolve() : link.once('close', () => resolve()))))
      link.close()
    }
    // After the closes: a question settled now finds its link closed, not "not heard".
    this.#peers.stop()
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

  #accept(socket: Socket): void {
    if (this.#stopping) {
      socket.destroy()
      return
    }
    const from = `${socket.remoteAddress}:${socket.remotePort}`
    this.#handshaking.add(socket)
    Link.establish(socket, this.#linkInit('acceptor'), this.#peers.linkComponents)
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
    if (link.peerKind !== 'client') {
      this.#peers.adopt(link)
      return
    }
    this.#clients.add(link)
    link.on('message', (raw) => this.#onMessage(link, raw))
    link.once('close', () => {
      this.#clients.delete(link)
      this.#requests.failPending(link, 'client disconnected')
    })
    this.#sync.syncClient(link)
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
        if (!fromClient) this.#peers.onSuspect(link, message)
        return
      case 'relink':
      case 'relinked':
        // Only as a link's first message (the relinker reads those); later, nothing to do.
        return
      case 'heard':
        if (!fromClient) this.#peers.onHeard(link, message)
        return
      case 'gone':
      case 'synced':
        return
    }
  }
}
