import { createHash } from 'node:crypto'
import type { EventEmitter } from 'node:events'
import { createRequire } from 'node:module'
import { isIP } from 'node:net'
import type { Bonjour, Browser, Service, ServiceConfig } from 'bonjour-service'
import type { Logger } from 'pino'
import type { Candidate } from './discovery.js'

const require = createRequire(import.meta.url)

/** DNS-SD service type: adverts are `_wmesh._tcp.local`. */
export const MDNS_SERVICE_TYPE = 'wmesh'

/** What the mDNS side needs; see `DiscoveryInit` for each field. */
export interface MdnsInit {
  cluster: string
  nodeId: string
  nodeName: string
  port: number
  protocolVersion: number
  interface: string | undefined
  advertise: string | undefined
  browseInterval: number
  /** Re-propose known adverts this often (ms). */
  reproposeInterval: number
  browseOnly: boolean
}

const HOSTNAME = /^[A-Za-z0-9_.-]{1,253}$/
/** Bounds the adverts remembered for re-proposing (one per host:port). */
const MAX_KNOWN = 1024

/**
 * The DNS label for a node: readable (node name) and unique per cluster and incarnation
 * (hash of both). Unique names matter: on a conflict bonjour only logs and stops the
 * service. A `.` in a label would break the instance name.
 */
export function mdnsLabel(cluster: string, nodeId: string, nodeName: string): string {
  const readable = nodeName.replace(/[^A-Za-z0-9-]+/g, '-').slice(0, 40)
  const hash = createHash('sha256').update(`${cluster}\0${nodeId}`).digest('hex').slice(0, 16)
  return `${readable}-${hash}`
}

/** Publishes this node as `_wmesh._tcp` and proposes the same cluster's other nodes. */
export class MdnsDiscovery {
  readonly #init: MdnsInit
  /** Node ids of other clusters already reported. */
  readonly #foreign = new Set<string>()
  readonly #logger: Logger
  readonly #onCandidate: (candidate: Candidate) => void
  readonly #onError: (error: Error) => void
  /** Adverts seen and not said goodbye, by `host:port`, so a restarted node replaces its old entry. */
  readonly #known = new Map<string, Candidate>()
  #bonjour: Bonjour | undefined
  #browser: Browser | undefined
  #timers: Array<ReturnType<typeof setInterval>> = []

  constructor(
    init: MdnsInit,
    sink: { logger: Logger; candidate(candidate: Candidate): void; error(error: Error): void },
  ) {
    this.#init = init
    this.#logger = sink.logger
    this.#onCandidate = sink.candidate
    this.#onError = sink.error
  }

  start(): void {
    if (this.#bonjour) return
    const init = this.#init
    const onError = (error: Error) => this.#onError(new Error(`mDNS: ${error.message}`, { cause: error }))
    // `interface` alone makes multicast-dns bind the unicast address, which then receives
    // no multicast; binding 0.0.0.0 and joining on the interface works. The options type
    // (ServiceConfig) does not declare the multicast-dns socket options it forwards.
    const options = (init.interface ? { interface: init.interface, bind: '0.0.0.0' } : {}) as Partial<ServiceConfig>
    // Loaded on first use: about 7 MB of RSS that nodes without mDNS need not carry.
    const { Bonjour: BonjourClass } = require('bonjour-service') as typeof import('bonjour-service')
    const bonjour = new BonjourClass(options, onError)
    this.#bonjour = bonjour
    // bonjour never listens for the socket's own 'error' (EADDRINUSE, EACCES), so without
    // this listener it would crash the process. `server.mdns` is internal, hence the cast.
    const socket = (bonjour as unknown as { server?: { mdns?: EventEmitter } }).server?.mdns
    socket?.on('error', onError)
    socket?.on('warning', (error: Error) =>
      this.#logger.debug({ err: error.message }, `mDNS warning: ${error.message}`),
    )

    if (!init.browseOnly) {
      const label = mdnsLabel(init.cluster, init.nodeId, init.nodeName)
      const txt: Record<string, string | number> = {
        cluster: init.cluster,
        id: init.nodeId,
        name: init.nodeName,
        v: init.protocolVersion,
      }
      if (init.advertise) txt.addr = init.advertise
      bonjour.publish({
        name: label,
        type: MDNS_SERVICE_TYPE,
        protocol: 'tcp',
        port: init.port,
        // The default is os.hostname(), the same for every node of a host or namespace.
        host: `${label}.local`,
        txt,
        // The name holds a hash of the node id, so it cannot conflict; probing would only
        // delay the first advert by ~1 s.
        probe: false,
      })
      this.#logger.debug({ name: label, port: init.port }, 'mDNS: published')
    }

    const browser = bonjour.find({ type: MDNS_SERVICE_TYPE, protocol: 'tcp' })
    this.#browser = browser
    browser.on('up', (service) => this.#seen(service))
    browser.on('srv-update', (service) => this.#seen(service))
    browser.on('txt-update', (service) => this.#seen(service))
    browser.on('down', (service) => this.#gone(service))
    // The browser queries once; adverts of nodes that start later arrive unsolicited, but
    // a lost packet would otherwise never be repaired.
    this.#timers.push(setInterval(() => browser.update(), init.browseInterval))
    this.#timers.push(
      setInterval(() => {
        for (const candidate of this.#known.values()) this.#onCandidate(candidate)
      }, init.reproposeInterval),
    )
  }

  /** Says goodbye (peers see `down` within ms), then closes the socket. */
  async stop(): Promise<void> {
    const bonjour = this.#bonjour
    if (!bonjour) return
    this.#bonjour = undefined
    for (const timer of this.#timers) clearInterval(timer)
    this.#timers = []
    this.#browser?.stop()
    this.#browser = undefined
    this.#known.clear()
    await new Promise<void>((resolve) => {
      let closing = false
      // Goodbyes go out only if destroy() runs after unpublishAll has sent them.
      const close = () => {
        if (closing) return
        closing = true
        clearTimeout(deadline)
        bonjour.destroy(() => resolve())
      }
      const deadline = setTimeout(close, 1000)
      bonjour.unpublishAll(close)
    })
  }

  #seen(service: Service): void {
    const txt = (service.txt ?? {}) as Record<string, unknown>
    const id = typeof txt.id === 'string' ? txt.id : undefined
    if (!id || id === this.#init.nodeId) return
    if (txt.cluster !== this.#init.cluster) {
      // Another cluster on the same LAN is normal, but say so once per node: a typo in a
      // cluster name otherwise looks like discovery not working.
      if (!this.#foreign.has(id) && this.#foreign.size < 1024) {
        this.#foreign.add(id)
        this.#logger.info(
          { peer: id.slice(0, 100), cluster: String(txt.cluster).slice(0, 100) },
          `mDNS: ignoring a node of cluster "${String(txt.cluster).slice(0, 64)}" (this is "${this.#init.cluster}")`,
        )
      }
      return
    }
    const host = this.#addressOf(service, txt)
    const port = service.port
    if (!host || !Number.isInteger(port) || port < 1 || port > 65535) {
      this.#logger.debug({ peer: id.slice(0, 100) }, 'mDNS: ignored an advert without a usable address or port')
      return
    }
    const name = typeof txt.name === 'string' ? txt.name : undefined
    const candidate: Candidate = { host, port, source: 'mdns', nodeId: id, ...(name ? { name } : {}) }
    const key = `${host}:${port}`
    this.#known.delete(key)
    this.#known.set(key, candidate)
    if (this.#known.size > MAX_KNOWN) this.#known.delete(this.#known.keys().next().value as string)
    this.#onCandidate(candidate)
  }

  #gone(service: Service): void {
    const id = (service.txt as Record<string, unknown> | undefined)?.id
    for (const [key, candidate] of this.#known) if (candidate.nodeId === id) this.#known.delete(key)
  }

  /** The advertised address if set, else the packet's source, else the first IPv4 record. */
  #addressOf(service: Service, txt: Record<string, unknown>): string | undefined {
    if (typeof txt.addr === 'string' && (isIP(txt.addr) || HOSTNAME.test(txt.addr))) return txt.addr
    const source = service.referer?.address
    if (source && isIP(source)) return source
    return service.addresses?.find((address) => isIP(address) === 4)
  }
}
