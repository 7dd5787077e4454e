import type { Logger } from 'pino'
import type { ClusterMessage, NodeEntry } from './cluster-protocol.js'
import type { Link } from './link.js'
import { peerHost } from './node-addresses.js'

/** What relinking asks of its cluster. */
export interface RelinkerComponents {
  logger: Logger
  /** This node's id. */
  id: string
  /** The current link to each peer, by peer id. */
  links: ReadonlyMap<string, Link>
  registry: { get(id: string): NodeEntry | undefined }
  dial(host: string, port: number): Promise<Link>
  /**
   * Makes `link` the current link to its peer (listeners, our entry, a log line), then
   * handles `first`, a message already read from it, if given.
   */
  install(link: Link, ...first: [unknown] | []): void
  /** A fresh link to a peer with no current link: the usual adoption. */
  adopt(link: Link): void
  /**
   * A second link from a peer that is no relink: one of two simultaneous dials, or the
   * peer dropped its end of ours. Settles which stays; `first` is its first message.
   */
  settleDuplicate(link: Link, first: unknown): void
  send(link: Link, message: ClusterMessage): void
  /** How long a replaced link stays open for the answers still due on it (ms). */
  lingerMs: number
  /** The links' heartbeatTimeout (ms): the least time between two relink dials to one peer. */
  retryMs: number
  stopping(): boolean
}

/** How long a relink may wait for the other side's word (ms). */
const RELINK_TIMEOUT = 5000

const isMessage = (raw: unknown, t: string): boolean =>
  typeof raw === 'object' && raw !== null && (raw as { t?: unknown }).t === t

/**
 * Replaces a stalled link without marking its peer down. One TCP connection on a lossy
 * path can stall for many seconds (retransmission back-off doubles each time a resend is
 * lost too) while the peer is well and other nodes hear it; a fresh connection starts
 * with no back-off. So when a link's silence is vouched for by other nodes (`suspect`),
 * we dial the peer again and say `relink` first; the peer answers `relinked` and both
 * sides move to the new link. The old one is retired: nothing new is sent on it, and it
 * stays open `lingerMs` so that answers due on it still arrive (and, should the new link
 * fail at once, it can be current again).
 *
 * A second link from a peer that already has one is held until its first message, which
 * tells a relink from a plain dial. Two relinks crossing: the one dialed by the smaller
 * node id wins, on both sides: the larger id always yields, and the smaller refuses the
 * larger's while its own is on the wire or has just won. A peer that answers our relink
 * with anything but `relinked` had dropped its end of the old link and took ours as a
 * plain link: we move to it too.
 */
export class Relinker {
  readonly #components: RelinkerComponents
  /** Open links that are not current: held, awaiting the peer's word, or retired. */
  readonly #spare = new Set<Link>()
  /** Our relink to a peer under way: dialing, or dialed and awaiting `relinked`. */
  readonly #mine = new Map<string, Link | 'dialing'>()
  /** Retired links and the timers that close them. */
  readonly #retired = new Map<Link, NodeJS.Timeout>()
  /** When our relink to a peer last won (performance.now()), for relinks of its still in flight. */
  readonly #wonAt = new Map<string, number>()
  /** When a relink was last tried for a link, so a failing peer is dialed once per retryMs. */
  readonly #triedAt = new WeakMap<Link, number>()

  constructor(components: RelinkerComponents) {
    this.#components = components
  }

  /** The current link to a peer is silent while other nodes hear the peer: dial it afresh. */
  stalled(link: Link): void {
    const { links, registry, stopping, logger, retryMs } = this.#components
    const peerId = link.peerId
    if (stopping() || links.get(peerId) !== link || this.#mine.has(peerId)) return
    const now = performance.now()
    const tried = this.#triedAt.get(link)
    if (tried !== undefined && now - tried < retryMs) return
    this.#triedAt.set(link, now)
    const entry = registry.get(peerId)
    if (!entry) return
    const host = peerHost(entry.addresses, link.remoteAddress)
    if (!host) return
    this.#mine.set(peerId, 'dialing')
    logger.info({ peer: peerId }, `relinking with ${peerId}: a fresh connection, in place of the silent one`)
    this.#components.dial(host, entry.port).then(
      (fresh) => this.#dialed(peerId, fresh),
      (error: Error) => {
        if (this.#mine.get(peerId) === 'dialing') this.#mine.delete(peerId)
        logger.info({ peer: peerId, err: error.message }, `relinking with ${peerId} failed: ${error.message}`)
      },
    )
  }

  /** A link from a peer we have a current link with: decided by its first message. */
  hold(link: Link): void {
    this.#spare.add(link)
    const timer = setTimeout(() => link.close(), RELINK_TIMEOUT)
    const onClose = (): void => {
      clearTimeout(timer)
      this.#spare.delete(link)
    }
    link.once('close', onClose)
    link.once('message', (first) => {
      onClose()
      link.off('close', onClose)
      if (link.closed) return
      if (isMessage(first, 'relink')) this.#accept(link)
      else this.#components.settleDuplicate(link, first)
    })
  }

  /**
   * The current link to `peerId` has closed: a retired link to it that is still open and
   * heard, if any, becomes current again (a relink that failed at once, or two relinks
   * that crossed badly), so the peer is not marked down for it.
   */
  reinstate(peerId: string): Link | undefined {
    for (const [link, timer] of this.#retired) {
      if (link.peerId !== peerId || link.closed || link.silentFor >= this.#components.retryMs) continue
      clearTimeout(timer)
      this.#retired.delete(link)
      this.#spare.delete(link)
      return link
    }
    return undefined
  }

  /** Open links that are not current (held, awaiting the peer's word, retired): a stop closes them too. */
  get spare(): Link[] {
    return [...this.#spare]
  }

  #dialed(peerId: string, fresh: Link): void {
    const { links, stopping, send, logger } = this.#components
    const ours = this.#mine.get(peerId) === 'dialing'
    if (ours) this.#mine.delete(peerId)
    if (stopping()) {
      fresh.close()
      return
    }
    if (fresh.peerId !== peerId) {
      // Another incarnation answers there now: an ordinary new link.
      this.#components.adopt(fresh)
      return
    }
    if (!ours) {
      // The peer's own relink won meanwhile.
      fresh.close()
      return
    }
    // Said even when our old link has ended meanwhile: the peer may still hold its end.
    send(fresh, { t: 'relink' })
    if (!links.has(peerId)) {
      this.#components.adopt(fresh)
      return
    }
    this.#mine.set(peerId, fresh)
    this.#spare.add(fresh)
    const timer = setTimeout(() => fresh.close(), RELINK_TIMEOUT)
    const onClose = (): void => {
      clearTimeout(timer)
      this.#spare.delete(fresh)
      if (this.#mine.get(peerId) === fresh) this.#mine.delete(peerId)
    }
    fresh.once('close', onClose)
    fresh.once('message', (first) => {
      const current = this.#mine.get(peerId) === fresh
      onClose()
      fresh.off('close', onClose)
      if (!current || fresh.closed) {
        fresh.close()
        return
      }
      if (isMessage(first, 'relinked')) {
        this.#won(peerId)
        this.#switchTo(fresh)
        logger.info({ peer: peerId }, `relinked with ${peerId}`)
      } else {
        // The peer had dropped its end of the old link and took this one as a plain link.
        this.#switchTo(fresh, first)
        logger.info({ peer: peerId }, `linked afresh with ${peerId}: it had dropped the old link`)
      }
    })
  }

  #accept(link: Link): void {
    const peerId = link.peerId
    const mine = this.#mine.get(peerId)
    const wonAt = this.#wonAt.get(peerId)
    const justWon = wonAt !== undefined && performance.now() - wonAt < this.#components.retryMs
    if (this.#components.id < peerId && (typeof mine === 'object' || justWon)) {
      // Two relinks crossed: ours, dialed by the smaller id, is the one (the peer yields to it).
      link.close()
      return
    }
    // Ours, if only dialing, is dropped when its dial ends (#dialed sees it is no longer ours).
    this.#mine.delete(peerId)
    if (typeof mine === 'object') mine.close()
    this.#components.send(link, { t: 'relinked' })
    this.#switchTo(link)
    this.#components.logger.info({ peer: peerId }, `relinked with ${peerId} at its request`)
  }

  #won(peerId: string): void {
    const now = performance.now()
    for (const [id, at] of this.#wonAt) if (now - at >= this.#components.retryMs) this.#wonAt.delete(id)
    this.#wonAt.set(peerId, now)
  }

  /** Makes `fresh` current (handling `first`, if given) and retires the link it replaces. */
  #switchTo(fresh: Link, ...first: [unknown] | []): void {
    const old = this.#components.links.get(fresh.peerId)
    this.#components.install(fresh, ...first)
    if (old && old !== fresh) this.#retire(old)
  }

  #retire(link: Link): void {
    this.#spare.add(link)
    this.#retired.set(
      link,
      setTimeout(() => link.close(), this.#components.lingerMs),
    )
    link.once('close', () => {
      clearTimeout(this.#retired.get(link))
      this.#retired.delete(link)
      this.#spare.delete(link)
    })
  }
}
