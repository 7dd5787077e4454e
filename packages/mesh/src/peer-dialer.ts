import type { Logger } from 'pino'
import type { NodeEntry } from './cluster-protocol.js'
import type { Candidate } from './discovery.js'
import type { Link } from './link.js'
import type { Registry } from './registry.js'

/** Who is dialing. */
export interface PeerDialerInit {
  /** This node's id: a candidate with it is ourselves. */
  id: string
  /** The host the node listens for links on. */
  listenHost: string
}

/** What the dialer asks of its cluster. */
export interface PeerDialerComponents {
  /** The cluster's logger. */
  logger: Logger
  /** The live links, by peer id. */
  links: ReadonlyMap<string, Link>
  /** The cluster's registry: where linked peers listen. */
  registry: Pick<Registry, 'get'>
  /** This node's own entry: the addresses and port it listens on. */
  self(): Pick<NodeEntry, 'addresses' | 'port'>
  /** Connects to `host:port` and runs the link handshake as the dialer. */
  dial(host: string, port: number): Promise<Link>
  /** Takes a dialed link into the cluster. */
  adopt(link: Link): void
  /** True once the cluster is stopping (or stopped): it dials nobody. */
  stopping(): boolean
}

interface DialState {
  inFlight: boolean
  failures: number
  nextAt: number
}

const MAX_REDIAL_DELAY = 30_000
const REDIAL_FOR = 24 * 60 * 60 * 1000
/** A proposed address that did not answer is redialed at its backoff while proposed this recently. */
const CANDIDATE_FOR = 60_000
/** Addresses remembered with the node they led to (a bound: addresses come from the network). */
const MAX_REACHED = 4096
/**
 * Of a lost peer's entry, the addresses redialed, and how many are kept in all. Entries
 * come from peers: one that lists 64 made-up addresses under a new name at every link
 * must not turn this node into a dialer of its choosing.
 */
const LOST_ADDRESSES_PER_NODE = 4
const MAX_LOST = 1024
/** Dial states kept (backoff per address); the oldest idle ones go first. */
const MAX_DIAL_STATES = 4096

/**
 * Dials what discovery proposes and the peers the cluster has lost, one dial per address
 * at a time, with exponential backoff and jitter after failures. A proposed address that
 * did not answer (a seed started after this node) is redialed at its backoff, not only
 * when discovery proposes it again. Never dials this node itself or an address it already
 * has a link to; gives up on a lost peer after a day.
 */
export class PeerDialer {
  readonly #init: PeerDialerInit
  readonly #components: PeerDialerComponents
  readonly #logger: Logger
  readonly #dials = new Map<string, DialState>()
  /** Addresses that turned out to be ourselves. */
  readonly #selfAddresses = new Set<string>()
  /** Where lost peers were, to keep redialing them. */
  readonly #lost = new Map<string, { since: number; name: string }>()
  /** Proposed addresses not linked yet, and when discovery last proposed each. */
  readonly #proposed = new Map<string, number>()
  /**
   * The node each dialed address led to. A seed may name a node by an address its entry
   * does not list (a loopback or NAT address, a second interface): without this, every
   * re-proposal would dial it again and make a duplicate link to close.
   */
  readonly #reached = new Map<string, string>()

  constructor(init: PeerDialerInit, components: PeerDialerComponents) {
    this.#init = init
    this.#components = components
    this.#logger = components.logger
  }

  /** Dials a node that discovery proposes, unless it is this node or already linked. */
  onCandidate(candidate: Candidate): void {
    if (this.#components.stopping()) return
    if (candidate.nodeId === this.#init.id) return
    if (candidate.nodeId && this.#components.links.has(candidate.nodeId)) return
    this.#proposed.set(`${candidate.host}:${candidate.port}`, Date.now())
    this.#dial(candidate.host, candidate.port)
  }

  /** The link to a peer dropped: keep redialing it where it was. */
  lost(entry: NodeEntry): void {
    if (this.#components.stopping()) return
    for (const address of entry.addresses.slice(0, LOST_ADDRESSES_PER_NODE)) {
      if (this.#lost.size >= MAX_LOST) this.#lost.delete(this.#lost.keys().next().value as string)
      this.#lost.set(`${address}:${entry.port}`, { since: Date.now(), name: entry.name })
    }
  }

  /** Linked again (perhaps at another port, as a new incarnation): stop redialing where it used to be. */
  found(name: string): void {
    for (const [address, lost] of this.#lost) if (lost.name === name) this.#lost.delete(address)
  }

  /** Redials the lost peers and unanswered candidates whose backoff has passed; called every second. */
  redial(): void {
    const now = Date.now()
    for (const [address, proposedAt] of this.#proposed) {
      if (now - proposedAt > CANDIDATE_FOR) this.#proposed.delete(address)
      else this.#dialAddress(address)
    }
    // Dial states of addresses nobody proposes any more (no failure for an hour) go.
    for (const [address, state] of this.#dials) {
      if (!state.inFlight && now - state.nextAt > 60 * 60 * 1000) this.#dials.delete(address)
    }
    for (const [address, { since }] of this.#lost) {
      if (now - since > REDIAL_FOR) {
        this.#lost.delete(address)
        continue
      }
      this.#dialAddress(address)
    }
  }

  #dialAddress(address: string): void {
    const at = address.lastIndexOf(':')
    this.#dial(address.slice(0, at), Number(address.slice(at + 1)))
  }

  /** Seeds usually list every node, this one included: never dial ourselves. */
  #isSelf(host: string, port: number): boolean {
    const self = this.#components.self()
    if (port !== self.port) return false
    const listen = this.#init.listenHost
    if (host === listen || self.addresses.includes(host)) return true
    return (listen === '0.0.0.0' || listen === '::') && /^(127\.|::1$|localhost$)/.test(host)
  }

  #forgetOldestDial(): void {
    for (const [address, state] of this.#dials) {
      if (state.inFlight) continue
      this.#dials.delete(address)
      return
    }
  }

  #linkedAt(host: string, port: number): boolean {
    const reached = this.#reached.get(`${host}:${port}`)
    if (reached !== undefined && this.#components.links.has(reached)) return true
    for (const link of this.#components.links.values()) {
      const entry = this.#components.registry.get(link.peerId)
      if (entry && entry.port === port && entry.addresses.includes(host)) return true
    }
    return false
  }

  #dial(host: string, port: number): void {
    const address = `${host}:${port}`
    if (this.#selfAddresses.has(address) || this.#isSelf(host, port) || this.#linkedAt(host, port)) {
      this.#proposed.delete(address)
      return
    }
    let state = this.#dials.get(address)
    if (!state) {
      if (this.#dials.size >= MAX_DIAL_STATES) this.#forgetOldestDial()
      state = { inFlight: false, failures: 0, nextAt: 0 }
      this.#dials.set(address, state)
    }
    if (state.inFlight || Date.now() < state.nextAt) return
    state.inFlight = true
    this.#components.dial(host, port).then(
      (link) => {
        state.inFlight = false
        state.failures = 0
        this.#proposed.delete(address)
        if (this.#reached.size >= MAX_REACHED) this.#reached.clear()
        this.#reached.set(address, link.peerId)
        this.#components.adopt(link)
      },
      (error: Error & { code?: string }) => {
        state.inFlight = false
        // A stop ends handshakes under way: not a failure to report or back off from.
        if (this.#components.stopping()) return
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
}
