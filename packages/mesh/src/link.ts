import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { DEFAULT_MAX_FRAME_SIZE, InvalidArgumentError, msgpackCodec, type StreamDecoder } from '@wmesh/core'
import type { OutboundQueue } from '@wmesh/core/internal'
import type { Logger } from 'pino'
import { HeartbeatTimeoutError, LinkClosedError } from './link-errors.js'
import { runPreAuth } from './link-establish.js'
import { LinkHandshake } from './link-handshake.js'
import { MAX_HANDSHAKE_FRAME, type PeerIdentity, type PeerKind } from './link-messages.js'
import { refusalLogOf } from './refusal-log.js'

export { tlsConnectOptions, tlsServerOptions } from './link-tls.js'

/**
 * Whether the peer of a link silent for `silent` ms is still heard (by other nodes, or on
 * a newer link); settles within `within` ms.
 */
export type StillHeard = (link: Link, within: number, silent: number) => Promise<boolean>

/** How one end of a link is set up. */
export interface LinkInit {
  role: 'dialer' | 'acceptor'
  cluster: string
  /** The raw cluster secret (the secret file's contents, trimmed). */
  secret: Uint8Array
  localId: string
  localKind: PeerKind
  /** Deadline for the whole handshake, in ms (default 5000). */
  handshakeTimeout?: number
  /** A ping goes out this often, in ms (default 500). */
  heartbeatInterval?: number
  /**
   * No frame at all received for this long (ms, default 3000) destroys the link with
   * `HeartbeatTimeoutError`, unless `stillHeard` says other nodes still hear the peer.
   */
  heartbeatTimeout?: number
  /**
   * The longest silence a link outlives while `stillHeard` vouches for its peer (ms, at
   * least heartbeatTimeout; default heartbeatTimeout, which never asks).
   */
  suspectTimeout?: number
  /** Largest frame accepted or sent after authentication (default 16 MiB). */
  maxFrameSize?: number
}

/** What a link needs from its owner. */
export interface LinkComponents {
  logger: Logger
  /**
   * Asked once when the link has been silent for half its heartbeatTimeout, and again at
   * each check past it: resolves true while its peer is still heard elsewhere (one stalled
   * TCP connection, not a dead peer); half way the link then emits `suspect`, past the
   * bound it also waits on, up to suspectTimeout. Must settle within `within` ms. Used
   * only when suspectTimeout is above heartbeatTimeout.
   */
  stillHeard?: StillHeard
}

interface Settings {
  heartbeatInterval: number
  heartbeatTimeout: number
  suspectTimeout: number
  maxFrameSize: number
}

/**
 * Heartbeat frames are maps with one of these `t` values; they are answered and counted
 * here and never emitted. `send` refuses any message whose `t` starts with '$'.
 */
const PING = '$ping'
/** Bytes of one unfinished frame that count as a sign of life: a link slower than this per heartbeatTimeout is as good as silent. */
const PROGRESS_BYTES = 16 * 1024
const PONG = '$pong'

/**
 * One authenticated, msgpack-framed connection to another wmesh process (TCP or TLS).
 * Obtain one with `Link.establish`. Frames sent in one tick go out in one socket write;
 * heartbeats keep the link honest in both directions: any frame received counts as
 * liveness, and silence longer than `heartbeatTimeout` destroys the link.
 *
 * Events: `message` (each value the peer sent, in order), `close` (exactly once; undefined
 * after our own `close()`, otherwise the error that ended the link), `suspect` (ms of
 * silence, each time `stillHeard` vouches for the peer of a link silent for half its
 * heartbeatTimeout or more: this connection, not the peer, is failing). Attach listeners
 * before the next turn of the event loop after `establish` resolves.
 */
export class Link extends EventEmitter<{ message: [unknown]; close: [Error | undefined]; suspect: [number] }> {
  /** Which end we are: 'dialer' (we connected) or 'acceptor'. Settles simultaneous dials. */
  readonly role: 'dialer' | 'acceptor'
  /** The authenticated peer's id. */
  readonly peerId: string
  /** Whether the peer is a node or a client. */
  readonly peerKind: PeerKind
  /** The peer's address and port, as seen when the link was established. */
  readonly remoteAddress: string
  readonly remotePort: number
  readonly #socket: Socket
  readonly #queue: OutboundQueue
  readonly #decoder: StreamDecoder
  readonly #settings: Settings
  readonly #logger: Logger
  #rtt: number | undefined
  #closed = false
  #finished = false
  #lastReceived = performance.now()
  /** Bytes received since the last whole frame (or the last progress mark). */
  #partialBytes = 0
  /** Frames received, to tell a chunk that completed one from a chunk of a large frame. */
  #frames = 0
  #pings = 0
  #pingTimer: NodeJS.Timeout | undefined
  #stillHeard: StillHeard | undefined
  /** The silence (ms) at which a spell gets its half-way question; undefined: none. */
  #earlyAt: number | undefined
  /** Whether this spell of silence has had its half-way question. */
  #spellAsked = false
  /** Start of the spell of silence other nodes vouched for (its last frame's time), while it lasts. */
  #suspectSince: number | undefined
  #livenessTimer: NodeJS.Timeout | undefined
  #verdict: NodeJS.Immediate | undefined
  #closeTimer: NodeJS.Timeout | undefined
  #socketError: Error | undefined
  #drained: Promise<void> | undefined

  /**
   * Runs the handshake over an already-connected socket (TCP, or TLS after
   * 'secureConnect'). Resolves to an authenticated link; or rejects with
   * `AuthenticationError`, `HandshakeError`, `HandshakeTimeoutError` or `LinkClosedError`
   * after logging one warning, and closes the socket (after telling the peer why, when
   * the protocol allows).
   */
  static establish(socket: Socket, init: LinkInit, components: LinkComponents): Promise<Link> {
    return new Promise<Link>((resolve, reject) => {
      const address = socket.remoteAddress
      const port = socket.remotePort
      let machine: LinkHandshake
      let settings: Settings
      let timeout: number
      try {
        if (address === undefined || port === undefined || socket.destroyed)
          throw new LinkClosedError('the socket is not connected')
        settings = checkSettings(init)
        timeout = init.handshakeTimeout ?? 5000
        checkPositive('handshakeTimeout', timeout)
        machine = new LinkHandshake(init)
      } catch (error) {
        socket.destroy()
        reject(error)
        return
      }
      const logger = components.logger.child({ component: 'mesh:link', peer: `${address}:${port}` })
      socket.setNoDelay(true)
      runPreAuth(socket, machine, {
        timeout,
        refusals: refusalLogOf(components.logger),
        onAuthenticated: ({ peer, queue, leftover }) => {
          const link = new Link(socket, queue, init.role, peer, settings, logger, address as string, port as number)
          // suspectTimeout = heartbeatTimeout turns asking (and so relinking) off.
          if (settings.suspectTimeout > settings.heartbeatTimeout) {
            link.#stillHeard = components.stillHeard
            // The half-way question needs silence no healthy link shows (two pings missed)
            // and room before the bound: with heartbeats too close to the bound, none.
            const early = Math.max(settings.heartbeatTimeout / 2, 2 * settings.heartbeatInterval)
            if (components.stillHeard && early < settings.heartbeatTimeout) link.#earlyAt = early
          }
          resolve(link)
          // Let the owner attach listeners (promise continuations run first) before any message.
          setImmediate(() => link.#start(leftover))
        },
        onFailed: reject,
      })
    })
  }

  private constructor(
    socket: Socket,
    queue: OutboundQueue,
    role: 'dialer' | 'acceptor',
    peer: PeerIdentity,
    settings: Settings,
    logger: Logger,
    remoteAddress: string,
    remotePort: number,
  ) {
    super()
    this.#socket = socket
    this.#queue = queue
    this.role = role
    this.peerId = peer.id
    this.peerKind = peer.kind
    this.remoteAddress = remoteAddress
    this.remotePort = remotePort
    this.#settings = settings
    this.#logger = logger.child({ peerId: peer.id })
    this.#decoder = msgpackCodec.createDecoder({ maxFrameSize: settings.maxFrameSize })
    socket.on('error', (error) => {
      this.#socketError ??= error
    })
    socket.on('close', () => this.#onSocketClose())
  }

  /** Milliseconds of the last heartbeat round trip (undefined until one completed). */
  get rtt(): number | undefined {
    return this.#rtt
  }

  /** Milliseconds since the last frame (or real progress on a large one) came from the peer. */
  get silentFor(): number {
    return performance.now() - this.#lastReceived
  }

  /** True once `close()` or `destroy()` was called or the link ended. */
  get closed(): boolean {
    return this.#closed
  }

  /**
   * Queues one message (any MessagePack value); it goes out with the others of this tick.
   * Returns false above the high-water mark (1 MiB unsent): slow down. Throws
   * `LinkClosedError` once closed, `EncodeError`/`FrameTooLargeError` for a value that
   * cannot be sent, `WriteQueueFullError` at the hard limit (64 MiB unsent).
   */
  send(message: unknown): boolean {
    if (this.#closed) throw new LinkClosedError(`the link to ${this.peerId} is closed; wait for a new one`)
    if (isInternal(message)) throw new InvalidArgumentError(`message types starting with '$' are reserved for links`)
    msgpackCodec.write(message, this.#queue, this.#settings.maxFrameSize)
    return this.#queue.writable
  }

  /**
   * Resolves once the unsent bytes fall below the high-water mark (at once if they are),
   * or the link closes. Every waiter of one full spell shares one promise.
   */
  drained(): Promise<void> {
    if (this.#closed || this.#queue.writable) return Promise.resolve()
    this.#drained ??= new Promise<void>((resolve) => {
      const done = (): void => {
        cancel()
        this.off('close', done)
        this.#drained = undefined
        resolve()
      }
      const cancel = this.#queue.onWritable(done)
      this.once('close', done)
    })
    return this.#drained
  }

  /** Graceful: flushes what is queued, sends FIN, then emits 'close' with undefined. Idempotent. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#stopHeartbeats()
    this.#queue.flush()
    this.#socket.end()
    // A peer that never closes its side must not keep the socket forever.
    this.#closeTimer = setTimeout(() => this.#finish(undefined), this.#settings.heartbeatTimeout)
  }

  /** Immediate: drops what is queued, destroys the socket, emits 'close' with `error`. Idempotent. */
  destroy(error?: Error): void {
    this.#closed = true
    this.#finish(error)
  }

  #start(leftover: Uint8Array | undefined): void {
    if (this.#closed) return
    this.#lastReceived = performance.now()
    this.#pingTimer = setInterval(() => this.#ping(), this.#settings.heartbeatInterval)
    this.#livenessTimer = setTimeout(this.#checkLiveness, this.#earlyAt ?? this.#settings.heartbeatTimeout)
    this.#ping()
    if (leftover) this.#onData(leftover)
    if (this.#closed) return
    this.#socket.on('data', (chunk: Buffer) => this.#onData(chunk))
    this.#socket.resume()
  }

  #onData(chunk: Uint8Array): void {
    // Closing: read on until the peer's FIN, but buffer and deliver nothing.
    if (this.#closed) return
    const framesBefore = this.#frames
    try {
      this.#decoder.decode(chunk, this.#deliver)
    } catch (error) {
      this.#fault(error as Error, 'bad frame from the peer')
      return
    }
    // Liveness is a whole frame, or real progress on a large one. Bytes alone are not:
    // behind a corrupted length header, the peer's pings would be swallowed into a frame
    // that never ends and keep a dead link alive forever. One clock read per chunk.
    if (this.#frames === framesBefore) {
      this.#partialBytes += chunk.length
      if (this.#partialBytes < PROGRESS_BYTES) return
    }
    this.#partialBytes = 0
    this.#lastReceived = performance.now()
  }

  /** Ends the link because of one bad frame (or a throwing listener), with one log line. */
  #fault(error: Error, what: string): void {
    if (this.#finished) return
    this.#logger.warn({ code: (error as { code?: string }).code }, `closing link: ${what}: ${error.message}`)
    this.destroy(error)
  }

  readonly #deliver = (value: unknown): boolean => {
    if (this.#closed) return false
    this.#frames++
    if (isInternal(value)) {
      if (value.t === PING) this.#sendInternal({ t: PONG, n: value.n, at: value.at })
      else if (value.t === PONG && typeof value.at === 'number') {
        const rtt = performance.now() - value.at
        if (rtt >= 0 && Number.isFinite(rtt)) this.#rtt = rtt
      }
      return true
    }
    try {
      this.emit('message', value)
    } catch (error) {
      this.#fault(error as Error, "a 'message' listener threw")
      return false
    }
    return !this.#closed
  }

  #ping(): void {
    this.#sendInternal({ t: PING, n: ++this.#pings, at: performance.now() })
  }

  #sendInternal(message: unknown): void {
    try {
      msgpackCodec.write(message, this.#queue, this.#settings.maxFrameSize)
    } catch {
      // Queue at its hard limit: the peer is not reading; the liveness check decides.
    }
  }

  readonly #checkLiveness = (afterReads = false): void => {
    const silent = performance.now() - this.#lastReceived
    const limit = this.#settings.heartbeatTimeout
    if (silent < limit) {
      const earlyAt = this.#earlyAt
      if (earlyAt === undefined || silent < earlyAt) this.#spellAsked = false
      if (this.#suspectSince !== undefined) {
        const silentMs = Math.round(this.#lastReceived - this.#suspectSince)
        this.#logger.info({ silentMs }, `peer ${this.peerId} is heard again after about ${silentMs} ms of silence`)
        this.#suspectSince = undefined
      }
      // Half way, ask once whether others hear the peer: if they do, this connection is
      // stalling and a fresh one can take over (`suspect`) well before the limit.
      if (earlyAt !== undefined && this.#stillHeard && !this.#spellAsked && silent >= earlyAt) {
        this.#spellAsked = true
        this.#askEarly(this.#stillHeard, silent)
        return
      }
      const next = earlyAt !== undefined && silent < earlyAt ? earlyAt : limit
      this.#livenessTimer = setTimeout(this.#checkLiveness, Math.max(1, next - silent))
      return
    }
    if (!afterReads) {
      // Timers run before I/O in each loop turn: if our own loop was blocked (GC, a busy
      // turn), the peer's frames may be waiting in the kernel. Read them (poll phase), then
      // decide (check phase).
      this.#verdict = setImmediate(this.#checkLiveness, true)
      return
    }
    if (this.#stillHeard && silent < this.#settings.suspectTimeout) {
      // Answers may cross lossy links too: give them up to a heartbeatTimeout, within the limit.
      const within = Math.min(this.#settings.heartbeatTimeout, this.#settings.suspectTimeout - silent)
      this.#askOthers(this.#stillHeard, Math.max(1, Math.ceil(within)), silent)
      return
    }
    this.#timeOut(silent, this.#suspectSince !== undefined)
  }

  /** Half way to the limit (`#earlyAt`): others still hear the peer, so this connection is stalling. */
  #askEarly(stillHeard: StillHeard, silent: number): void {
    const limit = this.#settings.heartbeatTimeout
    stillHeard(this, Math.max(1, Math.ceil(limit - silent)), silent)
      .catch(() => false)
      .then((heard) => {
        if (this.#closed) return
        const now = performance.now() - this.#lastReceived
        if (heard && now >= (this.#earlyAt ?? limit)) this.emit('suspect', now)
        this.#livenessTimer = setTimeout(this.#checkLiveness, Math.max(1, limit - now))
      })
  }

  /**
   * Silent past heartbeatTimeout: one TCP connection can stall for seconds (retransmission
   * back-off on a lossy path) while its peer is well. Waits on while other nodes hear it.
   */
  #askOthers(stillHeard: StillHeard, within: number, askedAt: number): void {
    stillHeard(this, within, askedAt)
      .catch(() => false)
      .then((heard) => {
        if (this.#closed) return
        const silent = performance.now() - this.#lastReceived
        if (silent < this.#settings.heartbeatTimeout) {
          this.#checkLiveness()
          return
        }
        if (!heard) {
          // A question cut short by suspectTimeout is that limit reached, not a "no" (a timer
          // may fire a fraction of a millisecond early).
          this.#timeOut(silent, this.#suspectSince !== undefined && silent + 1 >= this.#settings.suspectTimeout)
          return
        }
        if (this.#suspectSince === undefined) {
          this.#suspectSince = this.#lastReceived
          this.#logger.info(
            { silentMs: Math.round(silent) },
            `no frame from peer ${this.peerId} for ${Math.round(silent)} ms, but it is still heard: keeping this link up to ${this.#settings.suspectTimeout} ms of silence`,
          )
        }
        this.emit('suspect', silent)
        const left = this.#settings.suspectTimeout - silent
        this.#livenessTimer = setTimeout(
          this.#checkLiveness,
          Math.max(1, Math.min(this.#settings.heartbeatInterval, left)),
        )
      })
  }

  #timeOut(silent: number, vouched: boolean): void {
    const limit = vouched ? this.#settings.suspectTimeout : this.#settings.heartbeatTimeout
    const error = new HeartbeatTimeoutError(
      vouched
        ? `no frame from peer ${this.peerId} for ${Math.round(silent)} ms (limit ${limit} ms while it is heard elsewhere): this link is cut off or stalled`
        : `no frame from peer ${this.peerId} for ${Math.round(silent)} ms (limit ${limit} ms): it is hung, overloaded or cut off`,
    )
    this.#logger.warn({ code: error.code }, `closing link: ${error.message}`)
    this.destroy(error)
  }

  #stopHeartbeats(): void {
    clearInterval(this.#pingTimer)
    clearTimeout(this.#livenessTimer)
    clearImmediate(this.#verdict)
  }

  #onSocketClose(): void {
    if (this.#closed) {
      this.#finish(undefined)
      return
    }
    const cause = this.#socketError
    const what = cause ? `failed (${(cause as { code?: string }).code ?? cause.message})` : 'was closed by the peer'
    this.destroy(new LinkClosedError(`the link to ${this.peerId} ${what}`, cause ? { cause } : undefined))
  }

  #finish(error: Error | undefined): void {
    if (this.#finished) return
    this.#finished = true
    this.#stopHeartbeats()
    clearTimeout(this.#closeTimer)
    this.#queue.discard()
    this.#socket.destroy()
    this.emit('close', error)
  }
}

function isInternal(value: unknown): value is { t: string; n?: unknown; at?: unknown } {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { t?: unknown }).t === 'string' &&
    (value as { t: string }).t.startsWith('$')
  )
}

function checkPositive(what: string, value: number): void {
  if (!(Number.isFinite(value) && value > 0)) throw new InvalidArgumentError(`${what} must be a positive number of ms`)
}

function checkSettings(init: LinkInit): Settings {
  const heartbeatTimeout = init.heartbeatTimeout ?? 3000
  const settings = {
    heartbeatInterval: init.heartbeatInterval ?? 500,
    heartbeatTimeout,
    suspectTimeout: init.suspectTimeout ?? heartbeatTimeout,
    maxFrameSize: init.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE,
  }
  checkPositive('heartbeatInterval', settings.heartbeatInterval)
  checkPositive('heartbeatTimeout', settings.heartbeatTimeout)
  if (settings.heartbeatTimeout <= settings.heartbeatInterval) {
    throw new InvalidArgumentError('heartbeatTimeout must be longer than heartbeatInterval')
  }
  if (!(settings.suspectTimeout >= settings.heartbeatTimeout)) {
    throw new InvalidArgumentError('suspectTimeout must be at least heartbeatTimeout')
  }
  const max = settings.maxFrameSize
  if (!Number.isInteger(max) || max < MAX_HANDSHAKE_FRAME || max > 0xffffffff) {
    throw new InvalidArgumentError(`maxFrameSize must be an integer from ${MAX_HANDSHAKE_FRAME} to ${0xffffffff}`)
  }
  return settings
}
