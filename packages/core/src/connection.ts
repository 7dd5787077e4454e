import type { Socket } from 'node:net'
import type { Logger } from 'pino'
import { formatAddress, MAX_TIMER_MS } from './address.js'
import { type Codec, type CodecName, resolveCodec, type StreamDecoder } from './codec.js'
import { type WaitOptions, waitWithDeadline } from './deadline.js'
import {
  ConnectError,
  ConnectionClosedError,
  ConnectionError,
  ConnectTimeoutError,
  FrameTimeoutError,
  HandlerError,
  IdleTimeoutError,
  TimeoutError,
  WmeshError,
} from './errors.js'
import { DEFAULT_MAX_FRAME_SIZE } from './frame-decoder.js'
import type { Handler } from './handler.js'
import { DEFAULT_HIGH_WATER_MARK, DEFAULT_MAX_QUEUED_BYTES, OutboundQueue } from './outbound-queue.js'
import { kConnection } from './symbols.js'
import { TimerSet } from './timers.js'

const DEFAULT_CLOSE_TIMEOUT = 30_000
const DEFAULT_FRAME_TIMEOUT = 30_000
/**
 * Bytes of a part-read message that count as progress and restart its frameTimeout: a
 * large message on a slow link is fine, a trickle below 16 KiB per frameTimeout is not
 * (at the default, about 550 B/s, the idea of Apache's mod_reqtimeout MinRate).
 */
const FRAME_PROGRESS_BYTES = 16 * 1024

/**
 * Checks connection options up front, so a bad value fails the `connect`/`startServer`
 * call instead of the first connection. Returns the resolved codec.
 */
export function validateConnectionOptions(options: ConnectionOptions): Codec {
  const codec = resolveCodec(options.codec)
  const max = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE
  if (!Number.isInteger(max) || max < 1 || max > 0xffffffff) {
    throw new RangeError(`maxFrameSize must be an integer between 1 and ${0xffffffff}, got ${max}`)
  }
  const high = options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK
  const hard = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES
  if (!(high > 0) || !(hard >= high)) {
    throw new RangeError(`need 0 < highWaterMark (${high}) <= maxQueuedBytes (${hard})`)
  }
  const idle = options.idleTimeout ?? 0
  if (!Number.isInteger(idle) || idle < 0 || idle > MAX_TIMER_MS) {
    throw new RangeError(`idleTimeout must be a whole number of ms from 0 (none) to ${MAX_TIMER_MS}, got ${idle}`)
  }
  const frame = options.frameTimeout ?? DEFAULT_FRAME_TIMEOUT
  if (!Number.isInteger(frame) || frame < 0 || frame > MAX_TIMER_MS) {
    throw new RangeError(`frameTimeout must be a whole number of ms from 0 (none) to ${MAX_TIMER_MS}, got ${frame}`)
  }
  // Node turns a delay above MAX_TIMER_MS into 1 ms, which would drop the queue at once.
  const close = options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT
  if (close !== Number.POSITIVE_INFINITY && (!Number.isInteger(close) || close < 0 || close > MAX_TIMER_MS)) {
    throw new RangeError(
      `closeTimeout must be a whole number of ms from 0 to ${MAX_TIMER_MS}, or Infinity for no deadline, got ${close}`,
    )
  }
  return codec
}

/** Options shared by `connect` and `startServer`, applied to each connection. */
export interface ConnectionOptions {
  /** `'msgpack'` (default): length-prefixed MessagePack values. `'raw'`: bytes as they arrive. */
  codec?: CodecName | Codec
  /** Largest frame accepted or sent, in bytes (default 16 MiB). */
  maxFrameSize?: number
  /** Above this many unsent bytes `sendData` returns false (default 1 MiB). */
  highWaterMark?: number
  /** Above this many unsent bytes `sendData` throws `WriteQueueFullError` (default 64 MiB). */
  maxQueuedBytes?: number
  /**
   * Deadline for `closeConnection({ afterWriting: true })` before the socket is destroyed
   * (default 30 s; at most 2147483647 ms; Infinity for none).
   */
  closeTimeout?: number
  /**
   * Close the connection (with `IdleTimeoutError`) when no whole message arrives for this
   * many ms; 0 (default) for never. Bytes that never complete a message do not count, so
   * this also ends a slowloris trickle. With the raw codec every read is a message.
   */
  idleTimeout?: number
  /**
   * Close the connection (with `FrameTimeoutError`) when a message that has begun to
   * arrive neither completes nor brings 16 KiB more of itself within this many ms: a peer
   * announcing a large frame and then stalling or trickling holds its buffer this long at
   * most, while a large message on a slow link still arrives. Default 30 s; 0 for never.
   * Idle time between messages does not count (see `idleTimeout`). No effect with the raw
   * codec, whose every read is a message.
   */
  frameTimeout?: number
}

/** Where the other end of a connection is. */
export interface PeerAddress {
  address: string
  port: number
  family: 'IPv4' | 'IPv6' | string
}

/** What a connection needs from the worker that owns it. */
export interface ConnectionComponents {
  logger: Logger
  /** The owning worker, exposed to handlers as `this.worker`. */
  worker: unknown
  /** Called once, after `unbind`, when the connection has fully closed. */
  onClosed(connection: Connection): void
}

export type ConnectionState = 'connecting' | 'open' | 'closing' | 'closed'

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/**
 * One socket, its codec, its write queue, its timers and the user's handler, with the
 * hook order and error rules of PRODUCT.md. Internal: users see it through `Handler`.
 */
export class Connection {
  readonly handler: Handler
  readonly socket: Socket
  readonly codec: Codec
  readonly queue: OutboundQueue
  readonly timers: TimerSet
  readonly maxFrameSize: number
  state: ConnectionState
  peer: PeerAddress
  readonly #decoder: StreamDecoder
  readonly #components: ConnectionComponents
  readonly #closeTimeout: number
  #error: Error | undefined
  /** Set by `fail`: the socket is being destroyed, so nothing more is delivered or sent. */
  #destroyed = false
  #closeTimer: ReturnType<typeof setTimeout> | undefined
  readonly #idleTimeout: number
  #idleTimer: ReturnType<typeof setTimeout> | undefined
  /** When the last whole message arrived (only kept with an idleTimeout). */
  #lastMessage = 0
  readonly #frameTimeout: number
  #frameTimer: ReturnType<typeof setTimeout> | undefined
  /** Since when a message has been part-way in, or last made progress (performance.now()), while one is. */
  #partialSince: number | undefined
  /** Its bytes in at that time. */
  #partialMark = 0
  /** Messages delivered so far, to tell which chunks completed one. */
  #delivered = 0
  /** Rejects the pending `connect` promise, if any. */
  #onConnectFailed: ((error: Error) => void) | undefined

  constructor(
    socket: Socket,
    handler: Handler,
    state: 'connecting' | 'open',
    peer: PeerAddress,
    options: ConnectionOptions,
    components: ConnectionComponents,
  ) {
    this.socket = socket
    this.handler = handler
    this.state = state
    this.peer = peer
    this.#components = components
    this.codec = resolveCodec(options.codec)
    this.maxFrameSize = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE
    this.#closeTimeout = options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT
    this.#idleTimeout = options.idleTimeout ?? 0
    if (this.#idleTimeout > 0) {
      this.#lastMessage = performance.now()
      this.#idleTimer = setTimeout(this.#checkIdle, this.#idleTimeout)
    }
    this.#frameTimeout = options.frameTimeout ?? DEFAULT_FRAME_TIMEOUT
    this.#decoder = this.codec.createDecoder({ maxFrameSize: this.maxFrameSize })
    this.queue = new OutboundQueue(socket, {
      highWaterMark: options.highWaterMark,
      maxQueuedBytes: options.maxQueuedBytes,
    })
    this.timers = new TimerSet((error) => this.fail(this.#hookError('timer callback', error)))
    ;(handler as unknown as Record<symbol, Connection>)[kConnection] = this
    socket.setNoDelay(true)
    socket.on('data', this.#onData)
    socket.on('error', this.#onError)
    socket.on('close', this.#onClose)
  }

  get logger(): Logger {
    return this.#components.logger
  }

  get worker(): unknown {
    return this.#components.worker
  }

  /**
   * Runs a user hook, unless the connection is already closing (an earlier hook closed it
   * or threw): later hooks are skipped. A throw (or a rejected promise) closes this
   * connection with `HandlerError`.
   */
  runHook(name: string, fn: () => unknown): void {
    if (this.#ending) return
    try {
      const result = fn()
      if (result instanceof Promise) result.catch((error: unknown) => this.fail(this.#hookError(name, error)))
    } catch (error) {
      this.fail(this.#hookError(name, error))
    }
  }

  /** For outbound connections: waits for the socket to connect, then runs the hooks. */
  awaitConnect(onConnected: ((handler: Handler) => void) | undefined, timeout: number): Promise<Handler> {
    return new Promise<Handler>((resolve, reject) => {
      const limit = Number.isFinite(timeout) ? Math.min(Math.max(0, timeout), MAX_TIMER_MS) : MAX_TIMER_MS
      const timer = setTimeout(() => {
        this.fail(new ConnectTimeoutError(`connect to ${this.#where()} timed out after ${timeout} ms`))
      }, limit)
      this.#onConnectFailed = (error) => {
        clearTimeout(timer)
        reject(error)
      }
      this.socket.once('connect', () => {
        clearTimeout(timer)
        this.#onConnectFailed = undefined
        this.state = 'open'
        this.#refreshPeer()
        if (onConnected) this.runHook('connect callback', () => onConnected(this.handler))
        this.runHook('connectionCompleted', () => this.handler.connectionCompleted())
        // Only a hook that threw has set an error by now; a hook that closed the connection
        // on purpose still gets its handler.
        if (this.#error) reject(this.#error)
        else resolve(this.handler)
      })
    })
  }

  /** For accepted connections: runs postInit, the accept callback and connectionCompleted. */
  accept(onAccepted: ((handler: Handler) => void) | undefined): void {
    this.runHook('postInit', () => this.handler.postInit())
    if (onAccepted) this.runHook('accept callback', () => onAccepted(this.handler))
    this.runHook('connectionCompleted', () => this.handler.connectionCompleted())
  }

  /** True while values are delivered and may be sent. */
  get open(): boolean {
    return this.state === 'open' && !this.#destroyed
  }

  /** True from `end` or `fail` on: no more hooks run and nothing more is sent. */
  get #ending(): boolean {
    return this.state === 'closing' || this.state === 'closed' || this.#destroyed
  }

  send(value: unknown): boolean {
    if (this.#ending) {
      // A failed connection keeps state 'open' until the socket's close event: it is closing.
      const state = this.state === 'closed' ? 'closed' : 'closing'
      throw new ConnectionClosedError(`cannot send: connection to ${this.#where()} is ${state}`)
    }
    this.codec.write(value, this.queue, this.maxFrameSize)
    return this.queue.writable
  }

  waitForDrain(options: WaitOptions = {}): Promise<void> {
    // A socket the peer reset is destroyed before its close event: its empty buffer is no drain.
    if (this.state === 'closed' || this.#destroyed || this.socket.destroyed) {
      return Promise.reject(new ConnectionClosedError('connection closed before drain', { cause: this.#error }))
    }
    this.queue.flush()
    if (this.queue.writable) return Promise.resolve()
    return waitWithDeadline<void>('waiting for drain', options, (resolve, reject) => {
      const onClose = (): void =>
        reject(new ConnectionClosedError('connection closed before drain', { cause: this.#error }))
      const cancel = this.queue.onWritable(resolve)
      this.socket.on('close', onClose)
      return () => {
        cancel()
        this.socket.off('close', onClose)
      }
    })
  }

  /** Graceful: flush what is queued, send FIN, close when the peer has it (or after closeTimeout). */
  end(): void {
    if (this.state === 'closed' || this.state === 'closing') return
    if (this.state === 'connecting') {
      this.fail(undefined)
      return
    }
    this.state = 'closing'
    this.queue.flush()
    this.socket.end()
    if (this.#closeTimeout === Number.POSITIVE_INFINITY) return
    this.#closeTimer = setTimeout(
      () =>
        this.fail(
          new TimeoutError(
            `peer did not take the last ${this.queue.bufferedBytes} bytes within ${this.#closeTimeout} ms`,
          ),
        ),
      this.#closeTimeout,
    )
  }

  /** Immediate: drop what is queued and close now. `error` reaches `unbind`. */
  fail(error: Error | undefined): void {
    if (this.state === 'closed') return
    this.#destroyed = true
    if (error && !this.#error) this.#error = error
    this.queue.discard()
    this.socket.destroy()
  }

  #where(): string {
    return formatAddress(this.peer.address, this.peer.port)
  }

  #hookError(hook: string, error: unknown): HandlerError {
    const name = this.handler.constructor.name
    return new HandlerError(`${name}.${hook} threw: ${errorMessage(error)}`, { cause: error })
  }

  #refreshPeer(): void {
    const { remoteAddress, remotePort, remoteFamily } = this.socket
    if (remoteAddress && remotePort)
      this.peer = { address: remoteAddress, port: remotePort, family: remoteFamily ?? '' }
  }

  readonly #onData = (chunk: Buffer): void => {
    // Nothing more is delivered once closing, so decoding would only let a peer that keeps
    // writing grow the decoder's buffer until the socket closes. The socket still reads, to see the FIN.
    if (!this.open) return
    const delivered = this.#delivered
    try {
      this.#decoder.decode(chunk, this.#deliver)
    } catch (error) {
      this.fail(error instanceof Error ? error : new ConnectionError(errorMessage(error)))
    }
    // One clock read per chunk that completed a message, and only with an idleTimeout.
    if (this.#idleTimeout > 0 && this.#delivered !== delivered) this.#lastMessage = performance.now()
    if (this.#frameTimeout > 0) this.#watchPartial(delivered)
  }

  /**
   * Starts the frameTimeout clock when a message is part-way in, and stops it when none
   * is; completing a message, or 16 KiB more of it, restarts it. One timer, armed only
   * while a message is part-way in.
   */
  #watchPartial(deliveredBefore: number): void {
    const pending = this.#decoder.pendingBytes ?? 0
    if (!(pending > 0) || !this.open) {
      this.#partialSince = undefined
      return
    }
    if (
      this.#partialSince === undefined ||
      this.#delivered !== deliveredBefore ||
      pending - this.#partialMark >= FRAME_PROGRESS_BYTES
    ) {
      this.#partialSince = performance.now()
      this.#partialMark = pending
    }
    this.#frameTimer ??= setTimeout(this.#checkFrame, this.#frameTimeout)
  }

  readonly #checkFrame = (): void => {
    this.#frameTimer = undefined
    if (this.#partialSince === undefined || !this.open) return
    const waited = performance.now() - this.#partialSince
    if (waited < this.#frameTimeout) {
      this.#frameTimer = setTimeout(this.#checkFrame, Math.max(1, this.#frameTimeout - waited))
      return
    }
    this.fail(
      new FrameTimeoutError(
        `a message from ${this.#where()} made no progress for ${this.#frameTimeout} ms (frameTimeout: it must complete or bring 16 KiB more); ${this.#decoder.pendingBytes} bytes of it came`,
      ),
    )
  }

  /** Hands one decoded value to `receiveData`; false stops decoding (closed, or the hook threw). */
  readonly #deliver = (value: unknown): boolean => {
    if (this.state !== 'open' || this.#destroyed) return false
    this.#delivered++
    try {
      const result = this.handler.receiveData(value) as unknown
      if (result instanceof Promise) result.catch((error: unknown) => this.fail(this.#hookError('receiveData', error)))
      return true
    } catch (error) {
      this.fail(this.#hookError('receiveData', error))
      return false
    }
  }

  /** One timer per connection, re-armed for the rest of the window rather than on every message. */
  readonly #checkIdle = (): void => {
    this.#idleTimer = undefined
    if (this.state === 'closed') return
    const silent = performance.now() - this.#lastMessage
    if (silent < this.#idleTimeout) {
      this.#idleTimer = setTimeout(this.#checkIdle, Math.max(1, this.#idleTimeout - silent))
      return
    }
    this.fail(new IdleTimeoutError(`no message from ${this.#where()} for ${this.#idleTimeout} ms (idleTimeout)`))
  }

  readonly #onError = (error: NodeJS.ErrnoException): void => {
    if (this.#error) return
    const where = `${this.#where()}`
    this.#error =
      this.state === 'connecting'
        ? new ConnectError(`connect to ${where} failed: ${error.code ?? error.message}`, { cause: error })
        : new ConnectionError(`connection to ${where} failed: ${error.code ?? error.message}`, { cause: error })
  }

  readonly #onClose = (): void => {
    if (this.state === 'closed') return
    const wasConnecting = this.state === 'connecting'
    this.state = 'closed'
    if (this.#closeTimer !== undefined) clearTimeout(this.#closeTimer)
    if (this.#idleTimer !== undefined) clearTimeout(this.#idleTimer)
    if (this.#frameTimer !== undefined) clearTimeout(this.#frameTimer)
    this.timers.close()
    this.queue.discard()
    const error = this.#error
    if (error) this.#logClose(error)
    try {
      const result = this.handler.unbind(error) as unknown
      if (result instanceof Promise) result.catch((e: unknown) => this.#logClose(this.#hookError('unbind', e)))
    } catch (e) {
      this.#logClose(this.#hookError('unbind', e))
    }
    if (wasConnecting) {
      this.#onConnectFailed?.(error ?? new ConnectError(`connect to ${this.#where()} was cancelled`))
    }
    this.#components.onClosed(this)
  }

  #logClose(error: Error): void {
    const code = error instanceof WmeshError ? error.code : (error as NodeJS.ErrnoException).code
    const peer = `${this.#where()}`
    // Bad input from a peer is a warning; a handler that throws is the user's bug, an error.
    // An idle timeout is the server's own policy at work (idle clients, floods): not worth a warning each.
    const level = error instanceof HandlerError ? 'error' : error instanceof IdleTimeoutError ? 'debug' : 'warn'
    this.logger[level](
      { component: 'core:connection', peer, code, err: error instanceof HandlerError ? error.cause : undefined },
      `connection closed: ${error.message}`,
    )
  }
}
