import { EventEmitter } from 'node:events'
import { isIP } from 'node:net'
import { InvalidArgumentError } from '@wmesh/core'
import type { Logger } from 'pino'
import { MdnsDiscovery } from './mdns-discovery.js'
import { parseSeed, SeedDiscovery, type SeedLookup } from './seed-discovery.js'

export { MDNS_SERVICE_TYPE, mdnsLabel } from './mdns-discovery.js'
export { parseSeed, type Seed, type SeedLookup, SeedResolveError } from './seed-discovery.js'

/** How a node (or client) looks for peers. */
export interface DiscoveryInit {
  /** Only adverts of this cluster are proposed. */
  cluster: string
  /** Unique per process run (`name:incarnation`); our own adverts carry it and are skipped. */
  nodeId: string
  nodeName: string
  /** The node's bound link port, advertised over mDNS. */
  port: number
  /** Advertised as TXT `v`. */
  protocolVersion: number
  /** Advertise and browse `_wmesh._tcp`. */
  mdns: boolean
  /** IPv4 address of the interface mDNS joins and sends on (default: all, sending on the default one). */
  interface?: string
  /** Address peers should dial instead of the packet's source (TXT `addr`). */
  advertise?: string
  /** `host:port` or `[v6]:port`; a host name may resolve to several addresses (each is proposed). */
  seeds: string[]
  /** Re-resolve and re-propose seeds, and re-propose known mDNS adverts, every N ms (default 5000). */
  seedInterval?: number
  /** Send an mDNS query every N ms (default 2000). */
  browseInterval?: number
  /** Browse without publishing (clients). Default false. */
  browseOnly?: boolean
}

/** Injected dependencies. */
export interface DiscoveryComponents {
  logger: Logger
  /** Name resolution for seeds (default `dns.lookup(host, { all: true })`). */
  lookup?: SeedLookup
}

/** An address worth dialing. Discovery only proposes; the link handshake decides. */
export interface Candidate {
  host: string
  port: number
  source: 'mdns' | 'seed'
  /** The advertised node id (mDNS only). */
  nodeId?: string
  /** The advertised node name (mDNS only). */
  name?: string
}

/** Events: `candidate` (repeated: consumers dedupe) and `error` (logged, never fatal). */
export type DiscoveryEvents = { candidate: [Candidate]; error: [Error] }

const MAX_LOGGED = 4096

/**
 * Proposes candidates from mDNS adverts and static seeds. Liveness never comes from here:
 * a crashed node's advert lingers for hours, so candidates are repeated and the link layer
 * dials, dedupes and backs off.
 */
export class Discovery extends EventEmitter<DiscoveryEvents> {
  readonly #logger: Logger
  readonly #seeds: SeedDiscovery
  readonly #mdns: MdnsDiscovery | undefined
  /** Candidates already logged, so each new address is logged once. */
  readonly #logged = new Set<string>()
  #started = false

  /** Throws `InvalidArgumentError` for a bad seed, port or interface address. */
  constructor(init: DiscoveryInit, components: DiscoveryComponents) {
    super()
    // A client only browses: it has no port to advertise.
    if (!init.browseOnly && (!Number.isInteger(init.port) || init.port < 1 || init.port > 65535)) {
      throw new InvalidArgumentError(`discovery: port ${init.port} is not a bound port in 1-65535`)
    }
    if (init.interface !== undefined && isIP(init.interface) !== 4) {
      throw new InvalidArgumentError(
        `discovery: interface "${init.interface}" must be the IPv4 address of a network interface, e.g. 192.168.1.10`,
      )
    }
    const seeds = init.seeds.map(parseSeed)
    const seedInterval = positive('seedInterval', init.seedInterval ?? 5000)
    this.#logger = components.logger.child({ component: 'mesh:discovery' })
    const sink = {
      logger: this.#logger,
      candidate: (candidate: Candidate) => this.#propose(candidate),
      error: (error: Error) => this.#fail(error),
    }
    this.#seeds = new SeedDiscovery({ seeds, interval: seedInterval, lookup: components.lookup }, sink)
    if (init.mdns) {
      this.#mdns = new MdnsDiscovery(
        {
          cluster: init.cluster,
          nodeId: init.nodeId,
          nodeName: init.nodeName,
          port: init.port,
          protocolVersion: init.protocolVersion,
          interface: init.interface,
          advertise: init.advertise,
          browseInterval: positive('browseInterval', init.browseInterval ?? 2000),
          reproposeInterval: seedInterval,
          browseOnly: init.browseOnly ?? false,
        },
        sink,
      )
    }
  }

  /** Starts publishing, browsing and resolving seeds. Idempotent. */
  async start(): Promise<void> {
    if (this.#started) return
    this.#started = true
    try {
      this.#mdns?.start()
      this.#seeds.start()
    } catch (error) {
      await this.stop()
      throw error
    }
  }

  /** Sends the mDNS goodbye, then closes the socket and clears every timer. Idempotent. */
  async stop(): Promise<void> {
    if (!this.#started) return
    this.#started = false
    this.#seeds.stop()
    await this.#mdns?.stop()
  }

  #propose(candidate: Candidate): void {
    if (!this.#started) return
    const key = `${candidate.source} ${candidate.host} ${candidate.port} ${candidate.nodeId ?? ''}`
    if (!this.#logged.has(key)) {
      if (this.#logged.size >= MAX_LOGGED) this.#logged.clear()
      this.#logged.add(key)
      this.#logger.debug(
        { source: candidate.source, host: candidate.host, port: candidate.port, peer: candidate.nodeId },
        `candidate ${candidate.host}:${candidate.port} (${candidate.source})`,
      )
    }
    this.emit('candidate', candidate)
  }

  #fail(error: Error): void {
    if (!this.#started) return
    if (this.listenerCount('error') > 0) this.emit('error', error)
    else this.#logger.warn({ err: error.message }, error.message)
  }
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0)
    throw new InvalidArgumentError(`discovery: ${name} must be > 0 ms, got ${value}`)
  return value
}
