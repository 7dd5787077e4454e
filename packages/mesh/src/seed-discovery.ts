import { lookup as dnsLookup } from 'node:dns'
import { isIP } from 'node:net'
import { InvalidArgumentError, WmeshError } from '@wmesh/core'
import type { Logger } from 'pino'
import type { Candidate } from './discovery.js'

/** A parsed seed: `host` is an IP literal (without brackets) or a DNS name. */
export interface Seed {
  text: string
  host: string
  port: number
}

/** A seed's host name did not resolve; discovery keeps retrying it. */
export class SeedResolveError extends WmeshError {
  override readonly code = 'ERR_SEED_RESOLVE'
}

/** `dns.lookup(host, { all: true })`, injectable so tests can fake a multi-address name. */
export type SeedLookup = (host: string) => Promise<string[]>

const HOSTNAME =
  /^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/

/**
 * Parses `host:port` or `[v6]:port`. Throws `InvalidArgumentError` saying what is wrong
 * and what form is expected.
 */
export function parseSeed(text: string): Seed {
  const bad = (why: string) =>
    new InvalidArgumentError(`invalid seed "${text}": ${why}; expected HOST:PORT or [IPV6]:PORT, e.g. node1:7946`)
  if (typeof text !== 'string') throw bad('not a string')
  const value = text.trim()
  let host: string
  let portText: string
  if (value.startsWith('[')) {
    const close = value.indexOf(']')
    if (close < 0 || value[close + 1] !== ':') throw bad('missing "]:PORT" after the IPv6 address')
    host = value.slice(1, close)
    portText = value.slice(close + 2)
    if (isIP(host) !== 6) throw bad(`"${host}" is not an IPv6 address`)
  } else {
    const colon = value.lastIndexOf(':')
    if (colon < 0) throw bad('missing ":PORT"')
    host = value.slice(0, colon)
    portText = value.slice(colon + 1)
    if (host.includes(':')) throw bad('IPv6 addresses need brackets, e.g. [::1]:7946')
    if (isIP(host) !== 4 && !HOSTNAME.test(host)) throw bad(`"${host}" is neither an IPv4 address nor a host name`)
  }
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : Number.NaN
  if (!(port >= 1 && port <= 65535)) throw bad(`port "${portText}" is not in 1-65535`)
  return { text: value, host, port }
}

const defaultLookup: SeedLookup = (host) =>
  new Promise((resolve, reject) => {
    dnsLookup(host, { all: true }, (error, addresses) =>
      error ? reject(error) : resolve(addresses.map((a) => a.address)),
    )
  })

/**
 * Resolves every seed now and then every `interval` ms, proposing each address it resolves
 * to. Re-proposing is deliberate: a seed that was down must be retried, and a DNS name
 * (a Kubernetes headless service) gains and loses addresses over time.
 */
export class SeedDiscovery {
  readonly #seeds: Seed[]
  readonly #interval: number
  readonly #lookup: SeedLookup
  readonly #logger: Logger
  readonly #onCandidate: (candidate: Candidate) => void
  readonly #onError: (error: Error) => void
  readonly #inFlight = new Set<string>()
  /** Seeds whose last lookup failed; reported once per failure streak. */
  readonly #failing = new Set<string>()
  #timer: ReturnType<typeof setInterval> | undefined

  constructor(
    init: { seeds: Seed[]; interval: number; lookup: SeedLookup | undefined },
    sink: { logger: Logger; candidate(candidate: Candidate): void; error(error: Error): void },
  ) {
    this.#seeds = init.seeds
    this.#interval = init.interval
    this.#lookup = init.lookup ?? defaultLookup
    this.#logger = sink.logger
    this.#onCandidate = sink.candidate
    this.#onError = sink.error
  }

  start(): void {
    if (this.#timer || this.#seeds.length === 0) return
    this.#timer = setInterval(() => this.#resolveAll(), this.#interval)
    this.#resolveAll()
  }

  stop(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  #resolveAll(): void {
    for (const seed of this.#seeds) {
      if (isIP(seed.host)) {
        this.#onCandidate({ host: seed.host, port: seed.port, source: 'seed' })
        continue
      }
      if (this.#inFlight.has(seed.text)) continue
      this.#inFlight.add(seed.text)
      this.#lookup(seed.host).then(
        (addresses) => {
          this.#inFlight.delete(seed.text)
          if (!this.#timer) return
          if (this.#failing.delete(seed.text))
            this.#logger.info({ seed: seed.text }, `seed ${seed.text} resolves again`)
          for (const host of addresses) this.#onCandidate({ host, port: seed.port, source: 'seed' })
        },
        (error: NodeJS.ErrnoException) => {
          this.#inFlight.delete(seed.text)
          if (!this.#timer || this.#failing.has(seed.text)) return
          this.#failing.add(seed.text)
          this.#onError(
            new SeedResolveError(
              `cannot resolve seed ${seed.text}: ${error.code ?? error.message}; retrying every ${this.#interval} ms`,
            ),
          )
        },
      )
    }
  }
}
