import type { Logger } from 'pino'
import type { ClusterMessage, NodeEntry } from './cluster-protocol.js'
import type { NodeIdentity } from './identity.js'
import type { Link } from './link.js'
import type { Registry } from './registry.js'

/** Whose entry this node publishes. */
export interface RegistrySyncInit {
  identity: NodeIdentity
  version: string
}

/** What registry synchronisation asks of its cluster. */
export interface RegistrySyncComponents {
  /** The cluster's logger. */
  logger: Logger
  /** The cluster's view of every node, this one included. */
  registry: Registry
  /** The live links to peers, by peer id. */
  links: ReadonlyMap<string, Link>
  /** The links of connected clients. */
  clients: ReadonlySet<Link>
  /** Sends a message, dropping it (with a debug line) if the link is closing. */
  send(link: Link, message: ClusterMessage): void
  /** The node's own entry as it is now (without id/rev bookkeeping). */
  describeSelf(): Pick<NodeEntry, 'workers' | 'services'>
}

/**
 * Keeps the registry in step across the cluster: publishes this node's entry to peers and
 * clients whenever it changes, sends peers a digest of its rev every second and answers a
 * `want` with the entry, applies the entries peers send and forwards the news to clients,
 * and tells clients which nodes are gone.
 */
export class RegistrySync {
  readonly #components: RegistrySyncComponents
  readonly #logger: Logger
  readonly #registry: Registry
  #self: NodeEntry

  constructor(init: RegistrySyncInit, components: RegistrySyncComponents) {
    this.#components = components
    this.#logger = components.logger
    this.#registry = components.registry
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

  /** This node's entry as last published. */
  get self(): NodeEntry {
    return this.#self
  }

  /** Records where this node listens for links; published with the next `updateSelf`. */
  listening(addresses: string[], port: number): void {
    this.#self = { ...this.#self, addresses, port }
  }

  /** Republishes this node's entry (workers or services changed). */
  updateSelf(): void {
    const { workers, services } = this.#components.describeSelf()
    this.#self = { ...this.#self, workers, services, rev: this.#self.rev + 1 }
    this.#registry.apply(this.#self)
    const message: ClusterMessage = { t: 'entry', entry: this.#self }
    for (const link of this.#components.links.values()) this.#components.send(link, message)
    for (const client of this.#components.clients) this.#components.send(client, message)
  }

  /** Sends this node's entry to a peer (a new link, or one that asked with `want`). */
  sendSelf(link: Link): void {
    this.#components.send(link, { t: 'entry', entry: this.#self })
  }

  /** Brings a new client up to date: every entry, then `synced`. */
  syncClient(link: Link): void {
    for (const entry of this.#registry.nodes()) this.#components.send(link, { t: 'entry', entry })
    this.#components.send(link, { t: 'synced' })
  }

  /** Tells every peer this node's rev, so that one that missed an entry asks for it. */
  broadcastDigest(): void {
    const message: ClusterMessage = { t: 'digest', id: this.#self.id, rev: this.#self.rev }
    for (const link of this.#components.links.values()) this.#components.send(link, message)
  }

  /** A peer's own entry came: applied, and forwarded to clients if it is news. */
  onEntry(message: Extract<ClusterMessage, { t: 'entry' }>): void {
    if (this.#registry.apply(message.entry)) {
      for (const client of this.#components.clients) this.#components.send(client, message)
    }
  }

  /** A peer's digest of its own entry came: ask for the entry if ours is older. */
  onDigest(link: Link, message: Extract<ClusterMessage, { t: 'digest' }>): void {
    const known = this.#registry.get(message.id)
    if (!known || known.rev < message.rev) this.#components.send(link, { t: 'want' })
  }

  /** Removes a node from the registry and tells clients it is gone. */
  nodeDown(peerId: string, reason: string): void {
    if (!this.#registry.remove(peerId, reason)) return
    this.#logger.warn({ peer: peerId, reason }, `node ${peerId} is down: ${reason}`)
    for (const client of this.#components.clients) this.#components.send(client, { t: 'gone', id: peerId, reason })
  }
}
