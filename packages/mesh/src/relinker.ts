import type { Logger } from 'pino'
import type { ClusterMessage, NodeEntry } from './cluster-protocol.js'
import type { Link } from './link.js'

/** What relinking asks of its cluster. */
export interface RelinkerComponents {
  logger: Logger
  /** This node's id. */
  id: string
  /** The current link to each peer, by peer id. */
  links: ReadonlyMap<string, Link>
  registry: { get(id: string): NodeEntry | undefined }
  dial(host: string, port: number): Promise<Link>
  /** Makes `link` the current link to its peer (listeners, our entry, a log line). */
  install(link: Link): void
  /** A fresh link to a peer with no current link: the usual adoption. */
  adopt(link: Link): void
  /**
   * A second link from a peer that is no relink: one of two simultaneous dials. Settles
   * which stays; `first` is its first message, handled if it does.
   */
  settleDuplicate(link: Link, first: unknown): void
  send(link: Link, message: ClusterMessage): void
  /** How long a replaced link stays open for the answers still due on it (ms). */
  lingerMs: number
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
 * stays open `lingerMs` so that answers due on it still arrive.
 *
 * A second link from a peer that already has one is held until its first message, which
 * tells a relink from one of two simultaneous dials. Two relinks crossing: the one dialed
 * by the smaller node id wins, on both sides.
 */
export class Relinker {
  readonly #components: RelinkerComponents
  /** Open links that are not current: held, awaiting the peer's word, or retired. */
  readonly #spare = new Set<Link>()
  /** Our relink to a peer under way: dialing, or dialed and awaiting `relinked`. */
  readonly #mine = new Map<string, Link | 'dialing'>()

  constructor(components: RelinkerComponents) {
    this.#components = components
  }

  /** The current link to a peer is silent while other nodes hear the peer: dial it afresh. */
  stalled(link: Link): void {
    const { links, registry, stopping, logger } = this.#components
    const peerId = link.peerId
    if (stopping() || links.get(peerId) !== link || this.#mine.has(peerId)) return
    const entry = registry.get(peerId)
    const remote = link.remoteAddress.replace(/^::ffff:/, '')
    const host = entry?.addresses.includes(remote) ? remote : entry?.addresses[0]
    if (!entry || !host) return
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

  /** Open links that are not current (held, awaiting the peer's word, retired): a stop closes them too. */
  get spare(): Link[] {
    return [...this.#spare]
  }

  #dialed(peerId: string, fresh: Link): void {
    const { links, stopping } = this.#components
    if (this.#mine.get(peerId) !== 'dialing' || stopping() || fresh.peerId !== peerId) {
      // The peer's own relink won meanwhile, or the peer restarted as another incarnation.
      if (this.#mine.get(peerId) === 'dialing') this.#mine.delete(peerId)
      if (stopping() || fresh.peerId === peerId) fresh.close()
      else this.#components.adopt(fresh)
      return
    }
    if (!links.has(peerId)) {
      // The silent link has ended meanwhile: this is simply the link to the peer now.
      this.#mine.delete(peerId)
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
      const ours = this.#mine.get(peerId) === fresh
      onClose()
      fresh.off('close', onClose)
      if (!ours || !isMessage(first, 'relinked') || fresh.closed) {
        fresh.close()
        return
      }
      this.#switchTo(fresh)
      this.#components.logger.info({ peer: peerId }, `relinked with ${peerId}`)
    })
    this.#components.send(fresh, { t: 'relink' })
  }

  #accept(link: Link): void {
    const peerId = link.peerId
    const mine = this.#mine.get(peerId)
    if (mine !== undefined && this.#components.id < peerId) {
      // Both sides relinked at once: ours, dialed by the smaller id, is the one.
      link.close()
      return
    }
    this.#mine.delete(peerId)
    if (mine !== undefined && mine !== 'dialing') mine.close()
    this.#components.send(link, { t: 'relinked' })
    this.#switchTo(link)
    this.#components.logger.info({ peer: peerId }, `relinked with ${peerId} at its request`)
  }

  /** Makes `fresh` current and retires the link it replaces. */
  #switchTo(fresh: Link): void {
    const old = this.#components.links.get(fresh.peerId)
    this.#components.install(fresh)
    if (old && old !== fresh) this.#retire(old)
  }

  #retire(link: Link): void {
    this.#spare.add(link)
    const timer = setTimeout(() => link.close(), this.#components.lingerMs)
    link.once('close', () => {
      clearTimeout(timer)
      this.#spare.delete(link)
    })
  }
}
