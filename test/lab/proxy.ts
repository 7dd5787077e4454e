/**
 * A small user-space TCP proxy for the lab: the kernel here has no netem, so latency,
 * stalls and corruption of one link are made by relaying it. Each accepted connection is
 * relayed to one target; the faults are functions on the proxy and apply to every
 * connection it relays, open or future:
 *
 * - `delay(ms)`: every chunk, each direction, leaves `ms` after it arrived; order is kept.
 * - `stall()` / `resume()`: nothing is forwarded (data, FIN or reset) and nothing is
 *   closed; a connection accepted meanwhile reaches the target only after `resume()`.
 * - `stallOpen()`: the same for the connections open now only (one TCP connection stuck
 *   in retransmission back-off); new ones pass. `resume()` ends it too.
 * - `corrupt({ bytes, after } | { probability }, direction)`: flips the next `bytes` bytes
 *   (after letting `after` pass), or each byte with `probability`; the masks (and which
 *   bytes, for a probability) come from a seeded generator (the seed is `proxy.seed`).
 * - `closeConnections()` (FIN both ways) and `reset()` (RST both ways) end what is open.
 *
 * `startProxy` runs it in this process (root-namespace loopback); `startProxyIn`
 * (`proxy-remote.ts`) runs it inside a lab host's namespace. Either way the owner ends it
 * with `close()`, which destroys every socket and the server.
 */
import { once } from 'node:events'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { SeededRandom } from '../support/seeded-random.js'

/** Which way bytes flow: from the client to the target, back, or both. */
export type Direction = 'to-target' | 'to-client' | 'both'

export interface ProxyInit {
  /** Address to listen on (default 127.0.0.1). */
  host?: string
  /** Port to listen on (default 0: a free one). */
  port?: number
  target: { host: string; port: number }
  /** Seed of the corruption generator (default: a random one, see `seed`). */
  seed?: number
}

export interface CorruptOptions {
  /** Default 'both'. */
  direction?: Direction
  /** Flip each of the next `bytes` bytes that pass (per direction), then stop. */
  bytes?: number
  /** With `bytes`: let this many bytes pass unchanged first (to hit a payload, not a header). */
  after?: number
  /** Flip each byte with this probability (0-1) until `heal()` or another `corrupt`. */
  probability?: number
}

export interface ProxyStats {
  /** Connections accepted so far. */
  accepted: number
  /** Connections with at least one socket still open. */
  open: number
  /** Bytes delivered in each direction. */
  toTarget: number
  toClient: number
  /** Bytes flipped. */
  corrupted: number
}

/** The faults of a proxy, the same in this process and in a lab namespace. */
export interface ProxyControl {
  readonly host: string
  readonly port: number
  /** Seed of the corruption generator: print it to replay a failure. */
  readonly seed: number
  delay(ms: number): Promise<void>
  stall(): Promise<void>
  /** Stalls the connections open now; connections accepted later pass. */
  stallOpen(): Promise<void>
  resume(): Promise<void>
  corrupt(options: CorruptOptions): Promise<void>
  /** Ends delay, stall and corruption (what is queued goes out in order). */
  heal(): Promise<void>
  /** Ends every open connection gracefully (FIN to both sides); new ones are still accepted. */
  closeConnections(): Promise<void>
  /** Resets every open connection (RST to both sides); new ones are still accepted. */
  reset(): Promise<void>
  stats(): Promise<ProxyStats>
  /** Stops listening and destroys every socket. Idempotent. */
  close(): Promise<void>
}

/** Reading pauses above this many queued bytes per direction, and resumes below a quarter. */
const HIGH_WATER = 1024 * 1024

type Item = { kind: 'data'; chunk: Buffer; due: number } | { kind: 'end' | 'reset'; due: number }

interface Corruption {
  skip: number
  remaining: number
  probability: number
}

/** One direction of one relayed connection: a queue of chunks, each due at a time. */
class Pipe {
  readonly #proxy: TcpProxy
  readonly #to: 'to-target' | 'to-client'
  readonly #from: Socket
  #sink: Socket | undefined
  #queue: Item[] = []
  #queuedBytes = 0
  #lastDue = 0
  #timer: NodeJS.Timeout | undefined
  #draining = false
  done = false
  /** Stalled on its own (`stallOpen`), whatever the proxy's state. */
  held = false

  constructor(proxy: TcpProxy, to: 'to-target' | 'to-client', from: Socket, sink: Socket | undefined) {
    this.#proxy = proxy
    this.#to = to
    this.#from = from
    this.#sink = sink
  }

  set sink(socket: Socket) {
    this.#sink = socket
    this.pump()
  }

  push(kind: Item['kind'], chunk?: Buffer): void {
    // Never earlier than what is already queued: a shorter delay must not reorder.
    const due = Math.max(performance.now() + this.#proxy.delayMs, this.#lastDue)
    this.#lastDue = due
    if (kind === 'data' && chunk) {
      const data = this.#proxy.mangle(this.#to, chunk)
      this.#queue.push({ kind, chunk: data, due })
      this.#queuedBytes += data.length
      if (this.#queuedBytes > HIGH_WATER) this.#from.pause()
    } else {
      this.#queue.push({ kind: kind === 'reset' ? 'reset' : 'end', due })
    }
    this.pump()
  }

  /** Delivers every item that is due, unless stalled; schedules itself for the next one. */
  pump(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    const sink = this.#sink
    if (this.#proxy.stalled || this.held || this.#draining || !sink || this.done) return
    while (this.#queue.length > 0) {
      const head = this.#queue[0] as Item
      const wait = head.due - performance.now()
      if (wait > 0) {
        this.#timer = setTimeout(() => this.pump(), Math.ceil(wait))
        break
      }
      this.#queue.shift()
      if (head.kind !== 'data') {
        this.done = true
        if (head.kind === 'reset') this.#proxy.resetAll(this)
        else if (!sink.destroyed) sink.end()
        return
      }
      this.#queuedBytes -= head.chunk.length
      this.#proxy.count(this.#to, head.chunk.length)
      if (sink.destroyed) continue
      if (!sink.write(head.chunk)) {
        this.#draining = true
        sink.once('drain', () => {
          this.#draining = false
          this.pump()
        })
        break
      }
    }
    if (this.#queuedBytes < HIGH_WATER / 4 && this.#from.isPaused() && !this.#from.destroyed) this.#from.resume()
  }

  stop(): void {
    clearTimeout(this.#timer)
    this.done = true
    this.#queue = []
  }
}

/** One relayed connection: the accepted socket, the one to the target, a pipe each way. */
class Relay {
  readonly client: Socket
  readonly up: Pipe
  upstream: Socket | undefined
  down: Pipe | undefined
  readonly #proxy: TcpProxy

  constructor(proxy: TcpProxy, client: Socket) {
    this.#proxy = proxy
    this.client = client
    this.up = new Pipe(proxy, 'to-target', client, undefined)
    client.on('data', (chunk: Buffer) => this.up.push('data', chunk))
    client.on('end', () => this.up.push('end'))
    client.on('error', () => this.up.push('reset'))
    client.on('close', () => this.#closed())
  }

  /** Opens the connection to the target (deferred while the proxy is stalled). */
  dial(target: { host: string; port: number }): void {
    if (this.upstream || this.client.destroyed) return
    const upstream = connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true })
    const down = new Pipe(this.#proxy, 'to-client', upstream, this.client)
    this.upstream = upstream
    this.down = down
    upstream.on('data', (chunk: Buffer) => down.push('data', chunk))
    upstream.on('end', () => down.push('end'))
    upstream.on('error', () => down.push('reset'))
    upstream.on('close', () => this.#closed())
    this.up.sink = upstream
  }

  get open(): boolean {
    return !this.client.destroyed || (this.upstream !== undefined && !this.upstream.destroyed)
  }

  pump(): void {
    this.up.pump()
    this.down?.pump()
  }

  /** Stalls (or releases) both directions of this connection alone. */
  hold(held: boolean): void {
    this.up.held = held
    if (this.down) this.down.held = held
  }

  end(): void {
    this.#stopPipes()
    this.client.end()
    this.upstream?.end()
  }

  reset(): void {
    this.#stopPipes()
    if (!this.client.destroyed) this.client.resetAndDestroy()
    if (this.upstream && !this.upstream.destroyed) this.upstream.resetAndDestroy()
  }

  destroy(): void {
    this.#stopPipes()
    this.client.destroy()
    this.upstream?.destroy()
  }

  #stopPipes(): void {
    this.up.stop()
    this.down?.stop()
  }

  #closed(): void {
    if (!this.open) this.#proxy.forget(this)
  }
}

/** The proxy in this process. Use `startProxy`. */
export class TcpProxy implements ProxyControl {
  readonly host: string
  readonly port: number
  readonly seed: number
  delayMs = 0
  stalled = false
  readonly #server: Server
  readonly #target: { host: string; port: number }
  readonly #random: SeededRandom
  readonly #relays = new Set<Relay>()
  readonly #corruption: Record<'to-target' | 'to-client', Corruption> = {
    'to-target': { skip: 0, remaining: 0, probability: 0 },
    'to-client': { skip: 0, remaining: 0, probability: 0 },
  }
  readonly #stats: ProxyStats = { accepted: 0, open: 0, toTarget: 0, toClient: 0, corrupted: 0 }
  #closing: Promise<void> | undefined

  private constructor(server: Server, init: ProxyInit, random: SeededRandom) {
    const address = server.address() as { address: string; port: number }
    this.host = address.address
    this.port = address.port
    this.seed = random.seed
    this.#server = server
    this.#target = init.target
    this.#random = random
    server.on('connection', (socket: Socket) => this.#accept(socket))
  }

  /** Listens; resolves once it accepts connections. */
  static async start(init: ProxyInit): Promise<TcpProxy> {
    const random =
      init.seed === undefined ? new SeededRandom(Math.floor(Math.random() * 2 ** 32)) : new SeededRandom(init.seed)
    const server = createServer({ allowHalfOpen: true, noDelay: true })
    server.listen(init.port ?? 0, init.host ?? '127.0.0.1')
    await once(server, 'listening')
    return new TcpProxy(server, init, random)
  }

  async delay(ms: number): Promise<void> {
    if (!(Number.isFinite(ms) && ms >= 0)) throw new RangeError(`delay: ms must be >= 0, got ${ms}`)
    this.delayMs = ms
  }

  async stall(): Promise<void> {
    this.stalled = true
  }

  async stallOpen(): Promise<void> {
    for (const relay of this.#relays) relay.hold(true)
  }

  async resume(): Promise<void> {
    for (const relay of this.#relays) relay.hold(false)
    this.stalled = false
    for (const relay of [...this.#relays]) {
      // Connections whose client gave up during the stall never reached the target.
      if (!relay.upstream && relay.client.destroyed) this.forget(relay)
      else relay.dial(this.#target)
      relay.pump()
    }
  }

  async corrupt(options: CorruptOptions): Promise<void> {
    const { bytes = 0, after = 0, probability = 0, direction = 'both' } = options
    for (const [name, n] of [
      ['bytes', bytes],
      ['after', after],
    ] as const) {
      if (!(Number.isInteger(n) && n >= 0)) throw new RangeError(`corrupt: ${name} must be an integer >= 0, got ${n}`)
    }
    if (!(probability >= 0 && probability <= 1)) throw new RangeError(`corrupt: probability must be 0-1`)
    for (const to of directions(direction)) this.#corruption[to] = { skip: after, remaining: bytes, probability }
  }

  async heal(): Promise<void> {
    this.delayMs = 0
    for (const to of directions('both')) this.#corruption[to] = { skip: 0, remaining: 0, probability: 0 }
    await this.resume()
  }

  async closeConnections(): Promise<void> {
    for (const relay of this.#relays) relay.end()
  }

  async reset(): Promise<void> {
    for (const relay of [...this.#relays]) relay.reset()
  }

  async stats(): Promise<ProxyStats> {
    return { ...this.#stats, open: this.#relays.size }
  }

  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      this.#server.close(() => resolve())
      for (const relay of this.#relays) relay.destroy()
      this.#relays.clear()
    })
    return this.#closing
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  /** @internal Applies the corruption of direction `to` to one chunk (a copy when it flips). */
  mangle(to: 'to-target' | 'to-client', chunk: Buffer): Buffer {
    const c = this.#corruption[to]
    if (c.remaining === 0 && c.probability === 0) return chunk
    const out = Buffer.from(chunk)
    for (let i = 0; i < out.length; i++) {
      if (c.remaining > 0 && c.skip > 0) {
        c.skip--
        continue
      }
      if (c.remaining > 0) c.remaining--
      else if (!(c.probability > 0 && this.#random.next() < c.probability)) continue
      // XOR with a non-zero mask, so the byte always changes.
      out[i] = (out[i] as number) ^ this.#random.int(1, 255)
      this.#stats.corrupted++
    }
    return out
  }

  /** @internal */
  count(to: 'to-target' | 'to-client', bytes: number): void {
    if (to === 'to-target') this.#stats.toTarget += bytes
    else this.#stats.toClient += bytes
  }

  /** @internal A reset reached the end of a pipe: reset both sockets of its relay. */
  resetAll(pipe: Pipe): void {
    for (const relay of this.#relays) if (relay.up === pipe || relay.down === pipe) relay.reset()
  }

  /** @internal */
  forget(relay: Relay): void {
    relay.destroy()
    this.#relays.delete(relay)
  }

  #accept(socket: Socket): void {
    if (this.#closing) {
      socket.destroy()
      return
    }
    this.#stats.accepted++
    const relay = new Relay(this, socket)
    this.#relays.add(relay)
    if (!this.stalled) relay.dial(this.#target)
  }
}

function directions(direction: Direction): Array<'to-target' | 'to-client'> {
  return direction === 'both' ? ['to-target', 'to-client'] : [direction]
}

/** Starts a proxy in this process, listening on `init.host` (default loopback). */
export function startProxy(init: ProxyInit): Promise<TcpProxy> {
  return TcpProxy.start(init)
}
