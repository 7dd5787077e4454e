import type { Logger } from 'pino'
import type { Connection, PeerAddress } from './connection.js'
import type { WaitOptions } from './deadline.js'
import { ConnectionClosedError } from './errors.js'
import { kConnection } from './symbols.js'
import type { Timer } from './timers.js'
import type { Worker } from './worker.js'

/** Options of `closeConnection`. */
export interface CloseOptions {
  /** Send everything already queued before closing (default false: close now, drop the queue). */
  afterWriting?: boolean
}

/**
 * One TCP connection inside a worker, as BackgrounDRb's handler classes: subclass it and
 * override the hooks. wmesh creates one instance per accepted or opened connection.
 *
 * Hook order: `postInit`, then the callback given to `connect`/`startServer`, then
 * `connectionCompleted`; `receiveData` for each value; `unbind(reason?)` exactly once
 * when the connection ends (`reason` is set when it ended because of an error, including
 * a failed connect). A hook that throws closes this connection only.
 *
 * @typeParam W the owning worker's class, for a typed `this.worker`.
 */
export class Handler<W extends Worker = Worker> {
  declare [kConnection]: Connection | undefined

  /** Called first, when the handler is created (for `connect`, before the socket is connected). */
  postInit(): void {}
  /** Called once the connection is established, after the `connect`/`startServer` callback. */
  connectionCompleted(): void {}
  /** Called with each value received: a decoded MessagePack value, or a `Buffer` with the raw codec. */
  receiveData(_data: unknown): void {}
  /** Called once when the connection has ended; `reason` is the error that ended it, if any. */
  unbind(_reason?: Error): void {}

  #conn(): Connection {
    const conn = this[kConnection]
    if (!conn)
      throw new Error(`${this.constructor.name} is not attached to a connection; wmesh creates handlers itself`)
    return conn
  }

  /** The worker that owns this connection. */
  get worker(): W {
    return this.#conn().worker as W
  }

  /** The worker's logger. */
  get log(): Logger {
    return this.#conn().logger
  }

  /** The other end's address, port and family. */
  get peer(): PeerAddress {
    return this.#conn().peer
  }

  /** True from `connectionCompleted` until the connection starts closing. */
  get connected(): boolean {
    return this.#conn().open
  }

  /** Bytes queued and not yet handed to the kernel. */
  get bufferedBytes(): number {
    return this.#conn().queue.bufferedBytes
  }

  /**
   * Queues one value (MessagePack) or string/bytes (raw codec) for sending. Values sent in
   * one tick leave in one write. Returns false when the unsent bytes are above the
   * high-water mark: the caller should `await this.waitForDrain()` before sending more.
   * Throws `WriteQueueFullError` at the hard limit, `FrameTooLargeError` for a value
   * above `maxFrameSize`, `ConnectionClosedError` once closing.
   */
  sendData(value: unknown): boolean {
    return this.#conn().send(value)
  }

  /** Resolves when the unsent bytes are below the high-water mark; rejects if the connection closes first. */
  waitForDrain(options?: WaitOptions): Promise<void> {
    const conn = this[kConnection]
    if (!conn) return Promise.reject(new ConnectionClosedError('handler is not attached to a connection'))
    return conn.waitForDrain(options)
  }

  /** Closes the connection: now (default), or after everything queued has been written. Idempotent. */
  closeConnection(options: CloseOptions = {}): void {
    const conn = this.#conn()
    if (options.afterWriting) conn.end()
    else conn.fail(undefined)
  }

  /** Runs `fn` once after `ms` milliseconds; cancelled when the connection ends. */
  addTimer(ms: number, fn: () => unknown): Timer {
    return this.#conn().timers.once(ms, fn)
  }

  /** Runs `fn` every `ms` milliseconds; cancelled when the connection ends. */
  addPeriodicTimer(ms: number, fn: () => unknown): Timer {
    return this.#conn().timers.every(ms, fn)
  }

  /** Stops a timer started by this handler. */
  cancelTimer(timer: Timer): void {
    timer.cancel()
  }
}

/** A handler class wmesh can instantiate: a no-argument constructor. */
export type HandlerClass<H extends Handler = Handler> = new () => H
