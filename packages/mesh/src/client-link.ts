import { setTimeout as delay } from 'node:timers/promises'
import { NodeDownError } from '@wmesh/core'
import type { Logger } from 'pino'
import { type ClusterMessage, PROTOCOL_VERSION, parseClusterMessage } from './cluster-protocol.js'
import { type Candidate, Discovery } from './discovery.js'
import type { Link } from './link.js'
import { dialLink } from './link-dial.js'
import type { Registry } from './registry.js'

/** Which cluster the client links with, and how. */
export interface ClientLinkerInit {
  /** The client's id: what the nodes see as the peer id of its link. */
  id: string
  /** Cluster name. */
  cluster: string
  /** The cluster secret. */
  secret: Buffer
  /** Seeds `host:port`. */
  join?: string[] | undefined
  /** Find nodes by mDNS (default: when no seeds are given). */
  mdns?: boolean | undefined
  /** IPv4 address of the interface for mDNS. */
  interface?: string | undefined
  tls: boolean
  /** Milliseconds to find and link with a node; then `NodeDownError`. */
  connectTimeout: number
}

/** What the linker asks of its client. */
export interface ClientLinkerComponents {
  /** The client's logger. */
  logger: Logger
  /** The client's view of the cluster: kept in step with the linked node's, and the nodes to dial. */
  registry: Registry
  /** The linked node answered a request. */
  result(message: Extract<ClusterMessage, { t: 'result' }>): void
  /** A link was adopted (its view may not have synced yet). */
  up(peerId: string): void
  /** The link dropped: what was in flight on it is lost. */
  down(peerId: string, reason: string): void
}

/**
 * Keeps a client linked with one node: finds nodes through discovery (and the view of the
 * last node), dials them in turn, adopts the first link that works and keeps the registry in
 * step with that node's view. If the link drops it links with another node, retrying every
 * second until it works or the client is closed.
 */
export class ClientLinker {
  readonly #init: ClientLinkerInit
  readonly #components: ClientLinkerComponents
  readonly #logger: Logger
  readonly #registry: Registry
  readonly #candidates = new Map<string, Candidate>()
  #discovery: Discovery | undefined
  #link: Link | undefined
  #linking: Promise<Link> | undefined
  #closed = false
  /** Ids held before the current link's full view arrived; those not re-sent are gone. */
  #unconfirmed: Set<string> | undefined
  #synced: (() => void) | undefined
  #retryTimer: ReturnType<typeof setTimeout> | undefined
  /** Aborted by `stop()`, to cut short the pause between rounds of dials. */
  readonly #stopping = new AbortController()

  constructor(init: ClientLinkerInit, components: ClientLinkerComponents) {
    this.#init = init
    this.#components = components
    this.#logger = components.logger.child({ component: 'mesh:client' })
    this.#registry = components.registry
  }

  /** The current link, closed or not: `undefined` before the first one and after a drop. */
  get link(): Link | undefined {
    return this.#link
  }

  /** Starts discovery: each node it proposes is dialed while the client has no link. */
  async start(): Promise<void> {
    const seeds = this.#init.join ?? []
    this.#discovery = new Discovery(
      {
        cluster: this.#init.cluster,
        nodeId: this.#init.id,
        nodeName: this.#init.id,
        port: 0,
        protocolVersion: PROTOCOL_VERSION,
        mdns: this.#init.mdns ?? seeds.length === 0,
        interface: this.#init.interface,
        seeds,
        browseOnly: true,
      },
      { logger: this.#components.logger },
    )
    this.#discovery.on('candidate', (c) => {
      this.#candidates.set(`${c.host}:${c.port}`, c)
      if (!this.#link && !this.#linking) void this.ensure().catch(() => {})
    })
    this.#discovery.on('error', (error) => this.#logger.debug({ err: error.message }, 'discovery error'))
    await this.#discovery.start()
  }

  /**
   * Stops discovery, the retries and the dials, and closes the link without reporting it
   * down. Called once, by the client's `close()`; a dial still in flight ends later (see
   * `settled`).
   */
  async stop(): Promise<void> {
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
  }

  /** Resolves once the dial in flight, if any, has ended. */
  async settled(): Promise<void> {
    // A dial that resolves after `stop()` sees #closed and ends its link; wait for it.
    await this.#linking?.catch(() => {})
  }

  /** The current link, or a new one to the first candidate node that answers. */
  ensure(): Promise<Link> {
    if (this.#closed) return Promise.reject(new NodeDownError('client is closed'))
    if (this.#link && !this.#link.closed) return Promise.resolve(this.#link)
    this.#linking ??= this.#findLink().finally(() => {
      this.#linking = undefined
    })
    return this.#linking
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

  async #findLink(): Promise<Link> {
    const deadline = Date.now() + this.#init.connectTimeout
    let lastError: Error | undefined
    while (Date.now() < deadline && !this.#closed) {
      const candidates = [
        ...this.#registry.nodes().flatMap((e) => e.addresses.map((host) => ({ host, port: e.port }))),
        ...this.#candidates.values(),
      ]
      for (const { host, port } of candidates) {
        if (this.#closed) break
        try {
          // A dial (connect and handshake) never outlasts what is left of the connect timeout.
          const link = await this.#dial(host, port, Math.max(1, deadline - Date.now()))
          if (this.#closed) {
            // stop() ran during the dial and knows nothing of this link: end it here.
            link.destroy()
            break
          }
          await this.#adopt(link)
          // stop() during the sync wait closes the adopted link itself.
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
      `cannot reach any node of cluster "${this.#init.cluster}"${lastError ? `: ${lastError.message}` : ' (none found)'}`,
      { cause: lastError },
    )
  }

  #dial(host: string, port: number, within: number): Promise<Link> {
    return dialLink(
      { host, port, tls: this.#init.tls, connectTimeout: Math.min(3000, within) },
      {
        role: 'dialer',
        cluster: this.#init.cluster,
        secret: this.#init.secret,
        localId: this.#init.id,
        localKind: 'client',
        handshakeTimeout: Math.min(5000, within),
      },
      { logger: this.#components.logger },
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
        case 'result':
          this.#components.result(message)
          return
        default:
          return
      }
    })
    link.once('close', (error) => {
      if (this.#link !== link) return
      this.#link = undefined
      const reason = `link to ${link.peerId} closed${error ? `: ${error.message}` : ''}`
      this.#components.down(link.peerId, reason)
      // The linked node may be down, or only our link. Its entry goes now; the rest is checked
      // against the next node's full view.
      this.#registry.remove(link.peerId, 'link lost')
      this.#relink()
    })
    this.#components.up(link.peerId)
    return synced
  }

  /** Keeps trying to link with some node until it works or the client is closed. */
  #relink(): void {
    if (this.#closed || this.#retryTimer !== undefined) return
    this.ensure().catch(() => {
      if (this.#closed) return
      this.#retryTimer = setTimeout(() => {
        this.#retryTimer = undefined
        this.#relink()
      }, 1000)
    })
  }
}
