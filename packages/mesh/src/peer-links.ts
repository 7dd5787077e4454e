import type { Logger } from 'pino'
import type { ClusterMessage, NodeEntry } from './cluster-protocol.js'
import { type NodeIdentity, parseNodeId } from './identity.js'
import type { Link, LinkComponents } from './link.js'
import { PeerWitnesses } from './peer-witnesses.js'
import { Relinker } from './relinker.js'

/** How the link table is set up. */
export interface PeerLinksInit {
  identity: NodeIdentity
  heartbeatInterval: number
  heartbeatTimeout: number
  suspectTimeout: number
}

/** What the link table asks of its cluster. */
export interface PeerLinksComponents {
  /** The cluster's logger. */
  logger: Logger
  /** The node links' own logger (they name their component). */
  linkLogger: Logger
  registry: { get(id: string): NodeEntry | undefined }
  /** Dials a node link, with `linkComponents`. */
  dial(host: string, port: number): Promise<Link>
  /** Sends a message, dropping it if the link is closing. */
  send(link: Link, message: ClusterMessage): void
  /** Every message that a kept link receives. */
  onMessage(link: Link, raw: unknown): void
  /** A link has become its peer's current link: the peer is (back) in reach. */
  onLinked(link: Link): void
  /** A node link has closed, current or not: what was in flight on it fails. */
  onClosed(link: Link, error: Error | undefined): void
  /** A peer has no link left (the reason says why); `lost`: it went away, redial it. */
  onDown(peerId: string, reason: string, lost: boolean): void
  stopping(): boolean
}

/**
 * The node links of a cluster, one current link per peer: admits a new link (who it is
 * from), settles two links to one peer (simultaneous dials, a relink, a peer that dropped
 * its end), and decides when a silent link ends (asking the other peers first, and
 * replacing a stalled connection: `PeerWitnesses`, `Relinker`). Client links are not here.
 */
export class PeerLinks {
  /** The current link to each peer, by peer id. */
  readonly links = new Map<string, Link>()
  readonly #init: PeerLinksInit
  readonly #components: PeerLinksComponents
  readonly #logger: Logger
  readonly #witnesses: PeerWitnesses
  readonly #relinker: Relinker

  constructor(init: PeerLinksInit, components: PeerLinksComponents) {
    this.#init = init
    this.#components = components
    this.#logger = components.logger
    this.#witnesses = new PeerWitnesses({
      links: this.links,
      send: components.send,
      heartbeatTimeout: init.heartbeatTimeout,
      heartbeatInterval: init.heartbeatInterval,
    })
    this.#relinker = new Relinker({
      logger: components.logger,
      id: init.identity.id,
      links: this.links,
      registry: components.registry,
      dial: components.dial,
      install: (link, ...first) => {
        this.#install(link)
        if (first.length > 0) components.onMessage(link, first[0])
      },
      adopt: (link) => this.adopt(link),
      settleDuplicate: (link, first) => this.#settleDuplicate(link, first),
      send: components.send,
      lingerMs: init.suspectTimeout,
      retryMs: init.heartbeatTimeout,
      stopping: components.stopping,
    })
  }

  /**
   * What node links are established with: a silent one asks the other peers before it
   * gives up (a retired one asks its successor).
   */
  get linkComponents(): LinkComponents {
    return {
      logger: this.#components.linkLogger,
      stillHeard: (link, within, silent) => {
        const current = this.links.get(link.peerId)
        if (this.#components.stopping() || current === undefined) return Promise.resolve(false)
        if (current !== link) return Promise.resolve(current.silentFor < this.#init.heartbeatTimeout)
        return this.#witnesses.stillHeard(link.peerId, within, silent)
      },
    }
  }

  /** Open node links that are not current (held, relinking, retired): a stop closes them too. */
  get spare(): Link[] {
    return this.#relinker.spare
  }

  /** A node link came up, accepted or dialed: keeps it, or closes it with one line saying why. */
  adopt(link: Link): void {
    if (this.#components.stopping()) {
      link.close()
      return
    }
    if (link.peerKind !== 'node') {
      this.#logger.warn({ peer: link.peerId }, `refused link: ${link.peerId} answered a node's dial as a client`)
      link.close()
      return
    }
    if (!this.#admit(link)) return
    if (this.links.has(link.peerId) && link.role === 'acceptor') {
      // A relink, or the other of two simultaneous dials: its first message tells.
      this.#relinker.hold(link)
      return
    }
    this.#settleDuplicate(link)
  }

  /** Another peer asks whether we hear a peer. */
  onSuspect(link: Link, message: Extract<ClusterMessage, { t: 'suspect' }>): void {
    this.#witnesses.onSuspect(link, message)
  }

  /** Another peer answers our question. */
  onHeard(link: Link, message: Extract<ClusterMessage, { t: 'heard' }>): void {
    this.#witnesses.onHeard(link, message)
  }

  /** Settles the questions still open; call after the links are closed (they then end quietly). */
  stop(): void {
    this.#witnesses.stop()
  }

  /**
   * Who is it from: a well-formed node id, not our own name, not an older incarnation of
   * a peer we have (a newer one replaces the older, which goes down).
   */
  #admit(link: Link): boolean {
    const { identity } = this.#init
    const peerId = link.peerId
    const peerName = peerId.slice(0, peerId.lastIndexOf(':'))
    // An id is name:incarnation, neither holding a colon: anything else could pass for
    // another node's name (n1:x:y reads as name "n1:x" here and "n1" in an entry).
    if (parseNodeId(peerId) === undefined || peerName.includes(':')) {
      this.#logger.warn({ peer: peerId }, `refused link: "${peerId}" is not a node id (name:incarnation)`)
      link.close()
      return false
    }
    if (peerName === identity.name) {
      this.#logger.error(
        { peer: peerId },
        `refused link: node ${peerId} uses this node's name "${peerName}"; ${peerId > identity.id ? 'it is the newer incarnation, so other nodes will prefer it' : 'this node is the newer incarnation'}`,
      )
      link.close()
      return false
    }
    // Of two live incarnations of one name, keep the newer (ids sort by start time).
    for (const [otherId, other] of this.links) {
      if (otherId === peerId || otherId.slice(0, otherId.lastIndexOf(':')) !== peerName) continue
      if (otherId > peerId) {
        this.#logger.warn(
          { peer: peerId, newer: otherId },
          `refused link: ${peerId} is an older incarnation of ${otherId}`,
        )
        link.close()
        return false
      }
      this.#logger.warn({ peer: otherId, newer: peerId }, `dropping ${otherId}: ${peerId} is a newer incarnation`)
      this.links.delete(otherId)
      other.close()
      this.#components.onDown(otherId, `replaced by a newer incarnation (${peerId})`, false)
    }
    return true
  }

  /**
   * Keeps one link per peer: of two simultaneous dials, both sides keep the one dialed by
   * the smaller node id; a new link replaces a silent one. `first` is a held link's first
   * message, handled if it stays.
   */
  #settleDuplicate(link: Link, ...first: [unknown] | []): void {
    const peerId = link.peerId
    const existing = this.links.get(peerId)
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
      this.links.delete(peerId)
      existing.close()
    }
    this.#install(link)
    if (first.length > 0) this.#components.onMessage(link, first[0])
  }

  /** Makes `link` the peer's link: messages, close, stalls; then tells the cluster. */
  #install(link: Link): void {
    const peerId = link.peerId
    this.links.set(peerId, link)
    link.on('message', (raw) => this.#components.onMessage(link, raw))
    link.once('close', (error) => this.#onClosed(link, error))
    link.on('suspect', () => this.#relinker.stalled(link))
    this.#components.onLinked(link)
    this.#logger.info({ peer: peerId, address: `${link.remoteAddress}:${link.remotePort}` }, `linked with ${peerId}`)
  }

  #onClosed(link: Link, error: Error | undefined): void {
    this.#components.onClosed(link, error)
    if (this.links.get(link.peerId) !== link) return
    this.links.delete(link.peerId)
    const back = this.#relinker.reinstate(link.peerId)
    if (back) {
      this.links.set(link.peerId, back)
      this.#logger.info(
        { peer: link.peerId, reason: error?.message },
        `back on the previous link to ${link.peerId}: the new one closed`,
      )
      return
    }
    this.#components.onDown(link.peerId, error ? error.message : 'link closed', true)
  }
}
