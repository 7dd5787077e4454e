import type { Socket } from 'node:net'
import type { Logger } from 'pino'
import { type Codec, type CodecName, resolveCodec, type StreamDecoder } from './codec.js'
import { type WaitOptions, waitWithDeadline } from './deadline.js'
import {
  ConnectError,
  ConnectionClosedError,
  ConnectionError,
  ConnectTimeoutError,
  HandlerError,
  TimeoutError,
  WmeshError,
} from './errors.js'
import { DEFAULT_MAX_FRAME_SIZE } from './frame-decoder.js'
import type { Handler } from './handler.js'
import { OutboundQueue } from './outbound-queue.js'
import { kConnection } from './symbols.js'
import { TimerSet } from './timers.js'

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
  /** Deadline for `closeConnection({ afterWriting: true })` before the socket is destroyed (default 30 s). */
  closeTimeout?: number
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

const DEFAULT_CLOSE_TIMEOUT = 30_000

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
  #closeTimer: ReturnType<typeof setTimeout> | undefined
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

  /** Runs a user hook; a throw (or a rejected promise) closes this connection with `HandlerError`. */
  runHook(name: string, fn: () => unknown): boolean {
    if (this.state === 'closed') return false
    try {
      const result = fn()
      if (result instanceof Promise) result.catch((error: unknown) => this.fail(this.#hookError(name, error)))
      return true
    } catch (error) {
      this.fail(this.#hookError(name, error))
      return false
    }
  }

  /** For outbound connections: waits for the socket to connect, then runs the hooks. */
  awaitConnect(onConnected: ((handler: Handler) => void) | undefined, timeout: number): Promise<Handler> {
    return new Promise<Handler>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(
          new ConnectTimeoutError(`connect to ${this.peer.address}:${this.peer.port} timed out after ${timeout} ms`),
        )
      }, timeout)
      this.#onConnectFailed = (error) => {
        clearTimeout(timer)
        reject(error)
      }
      this.socket.once('connect', () => {
        clearTimeout(timer)
        this.#onConnectFailed = undefined
        this.state = 'open'
        this.#refreshPeer()
        if (onConnected && !this.runHook('connect callback', () => onConnected(this.handler)))
          return reject(this.#error)
        if (!this.runHook('connectionCompleted', () => this.handler.connectionCompleted())) return reject(this.#error)
        resolve(this.handler)
      })
    })
  }

  /** For accepted connections: runs postInit, the accept callback and connectionCompleted. */
  accept(onAccepted: ((handler: Handler) => void) | undefined): void {
    if (!this.runHook('postInit', () => this.handler.postInit())) return
    if (onAccepted && !this.runHook('accept callback', () => onAccepted(this.handler))) return
    this.runHook('connectionCompleted', () => this.handler.connectionCompleted())
  }

  send(value: unknown): boolean {
    if (this.state === 'closed' || this.state === 'closing') {
      throw new ConnectionClosedError(
        `cannot send: connection to ${this.peer.address}:${this.peer.port} is ${this.state}`,
      )
    }
    this.codec.write(value, this.queue, this.maxFrameSize)
    return this.queue.writable
  }

  waitForDrain(options: WaitOptions = {}): Promise<void> {
    if (this.state === 'closed') return Promise.reject(new ConnectionClosedError('connection closed before drain'))
    this.queue.flush()
    if (this.queue.writable) return Promise.resolve()
    return waitWithDeadline<void>('waiting for drain', options, (resolve, reject) => {
      const onDrain = (): void => resolve()
      const onClose = (): void =>
        reject(new ConnectionClosedError('connection closed before drain', { cause: this.#error }))
      this.socket.on('drain', onDrain)
      this.socket.on('close', onClose)
      return () => {
        this.socket.off('drain', onDrain)
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
    if (error && !this.#error) this.#error = error
    this.queue.discard()
    this.socket.destroy()
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
    try {
      this.#decoder.decode(chunk, this.#deliver)
    } catch (error) {
      this.fail(error instanceof Error ? error : new ConnectionError(errorMessage(error)))
    }
  }

  /** Hands one decoded value to `receiveData`; false stops decoding (closed, or the hook threw). */
  readonly #deliver = (value: unknown): boolean => {
    if (this.state !== 'open') return false
    try {
      const result = this.handler.receiveData(value) as unknown
      if (result instanceof Promise) result.catch((error: unknown) => this.fail(this.#hookError('receiveData', error)))
      return true
    } catch (error) {
      this.fail(this.#hookError('receiveData', error))
      return false
    }
  }

  readonly #onError = (error: NodeJS.ErrnoException): void => {
    if (this.#error) return
    const where = `${this.peer.address}:${this.peer.port}`
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
      this.#onConnectFailed?.(
        error ?? new ConnectError(`connect to ${this.peer.address}:${this.peer.port} was cancelled`),
      )
    }
    this.#components.onClosed(this)
  }

  #logClose(error: Error): void {
    const code = error instanceof WmeshError ? error.code : (error as NodeJS.ErrnoException).code
    const peer = `${this.peer.address}:${this.peer.port}`
    // Bad input from a peer is a warning; a handler that throws is the user's bug, an error.
    const level = error instanceof HandlerError ? 'error' : 'warn'
    this.logger[level](
      { component: 'core:connection', peer, code, err: error instanceof HandlerError ? error.cause : undefined },
      `connection closed: ${error.message}`,
    )
  }
}
