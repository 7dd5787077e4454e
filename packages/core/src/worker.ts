import { connect as netConnect, type Socket } from 'node:net'
import type { Logger } from 'pino'
import type { CodecName } from './codec.js'
import { Connection, type ConnectionOptions, validateConnectionOptions } from './connection.js'
import { AbortError, WorkerStoppedError } from './errors.js'
import type { Handler, HandlerClass } from './handler.js'
import type { Mesh, ResultCache } from './mesh-api.js'
import type { WorkerRuntime } from './runtime.js'
import { listen, type ServerHandle, type ServerOptions } from './server.js'
import { kRuntime } from './symbols.js'
import type { Timer } from './timers.js'

/** Options of `connect`. */
export interface ConnectOptions extends ConnectionOptions {
  /** Milliseconds to wait for the TCP connect (default 10 s); then `ConnectTimeoutError`. */
  timeout?: number
  /** Aborts the connect attempt. */
  signal?: AbortSignal
  /** Restrict name resolution to IPv4 or IPv6. */
  family?: 4 | 6
  /** Local address to connect from. */
  localAddress?: string
}

const DEFAULT_CONNECT_TIMEOUT = 10_000

/**
 * A worker: one event loop with its own servers, connections and timers, as
 * BackgrounDRb's MetaWorker. Subclass it, set `static workerName`, and do your setup in
 * `create(args)`. Its public methods are what other workers and clients call.
 *
 * ```ts
 * export default class ServerWorker extends Worker {
 *   static workerName = 'server_worker'
 *   async create() { await this.startServer('0.0.0.0', 11009, TimeServer) }
 * }
 * ```
 */
export class Worker {
  /** The name other workers and clients use to reach this worker. Defaults to the class name. */
  static workerName?: string
  declare [kRuntime]: WorkerRuntime | undefined

  /** Runs once when the worker starts (and again after each restart in a node). */
  create(_args?: unknown): void | Promise<void> {}

  /** Runs when the worker stops, before its servers, connections and timers are closed. */
  onStop(): void | Promise<void> {}

  #runtime(): WorkerRuntime {
    const runtime = this[kRuntime]
    if (!runtime) throw new Error(`${this.constructor.name} is not running; start it with startWorker() or a node`)
    if (runtime.stopped) throw new WorkerStoppedError(`${this.constructor.name} has stopped`)
    return runtime
  }

  /**
   * The cluster, to call other workers: `this.mesh.worker('foo_worker').call('method', arg)`.
   * Available when the worker runs inside a node.
   */
  get mesh(): Mesh {
    const mesh = this.#runtime().mesh
    if (!mesh) throw new Error(`${this.constructor.name} is not running inside a wmesh node; this.mesh needs one`)
    return mesh
  }

  /** This worker's result cache: `this.cache.set(key, value)`; callers read it with `askResult(key)`. */
  get cache(): ResultCache {
    const cache = this.#runtime().cache
    if (!cache) throw new Error(`${this.constructor.name} is not running inside a wmesh node; this.cache needs one`)
    return cache
  }

  /** A pino logger that names this worker. */
  get log(): Logger {
    const runtime = this[kRuntime]
    if (!runtime) throw new Error(`${this.constructor.name} is not running; start it with startWorker() or a node`)
    return runtime.logger
  }

  /**
   * Opens a TCP connection handled by a new `HandlerClass` instance. Calls `postInit`,
   * then (once connected) `onConnected(handler)` and `connectionCompleted`, and resolves
   * to the handler. A failed connect calls `unbind(error)` and rejects with
   * `ConnectError`, `ConnectTimeoutError` or `AbortError`.
   */
  connect<H extends Handler>(
    host: string,
    port: number,
    HandlerClass: HandlerClass<H>,
    onConnected?: (handler: H) => void,
    options: ConnectOptions = {},
  ): Promise<H> {
    let runtime: WorkerRuntime
    let handler: H
    let socket: Socket | undefined
    let connection: Connection
    try {
      runtime = this.#runtime()
      validateConnectionOptions(options)
      handler = new HandlerClass()
      // net.connect throws on a bad port or family: a rejection too, like every other failure.
      socket = netConnect({ host, port, family: options.family, localAddress: options.localAddress, noDelay: true })
      connection = new Connection(socket, handler, 'connecting', { address: host, port, family: '' }, options, {
        logger: runtime.logger,
        worker: this,
        onClosed: (c) => runtime.connections.delete(c),
      })
    } catch (error) {
      socket?.destroy()
      return Promise.reject(error)
    }
    runtime.connections.add(connection)
    const { signal } = options
    const onAbort = (): void =>
      connection.fail(new AbortError(`connect to ${host}:${port} was aborted`, { cause: signal?.reason }))
    if (signal?.aborted) onAbort()
    else signal?.addEventListener('abort', onAbort, { once: true })
    connection.runHook('postInit', () => handler.postInit())
    const done = connection.awaitConnect(
      onConnected as ((h: Handler) => void) | undefined,
      options.timeout ?? DEFAULT_CONNECT_TIMEOUT,
    )
    return done.then(
      (h) => {
        signal?.removeEventListener('abort', onAbort)
        return h as H
      },
      (error: unknown) => {
        signal?.removeEventListener('abort', onAbort)
        throw error
      },
    )
  }

  /**
   * Listens on `host:port` (port 0 picks a free one); each accepted connection gets a new
   * `HandlerClass` instance: `postInit`, `onAccepted(handler)`, `connectionCompleted`.
   * Resolves to a handle with the bound `port` and `close()`; rejects with `ListenError`.
   */
  startServer<H extends Handler>(
    host: string,
    port: number,
    HandlerClass: HandlerClass<H>,
    onAccepted?: (handler: H) => void,
    options: ServerOptions = {},
  ): Promise<ServerHandle> {
    try {
      return listen(this.#runtime(), this, host, port, HandlerClass, onAccepted, options)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /**
   * Connects to a server some worker published with `startServer(..., { publish: name })`,
   * on any node: the seed's `connect` without a hard-coded address. Picks a publisher like
   * calls do (local first, then round-robin) and speaks its codec unless `options.codec`
   * says otherwise. Rejects with `NoSuchServiceError` when none is up.
   */
  async connectService<H extends Handler>(
    name: string,
    HandlerClass: HandlerClass<H>,
    onConnected?: (handler: H) => void,
    options: ConnectOptions & { node?: string } = {},
  ): Promise<H> {
    const service = await this.mesh.resolveService(name, { node: options.node, timeout: options.timeout })
    return this.connect(service.host, service.port, HandlerClass, onConnected, {
      ...options,
      codec: options.codec ?? (service.codec as CodecName),
    })
  }

  /** Runs `fn` once after `ms` milliseconds; cancelled when the worker stops. */
  addTimer(ms: number, fn: () => unknown): Timer {
    return this.#runtime().timers.once(ms, fn)
  }

  /** Runs `fn` every `ms` milliseconds; cancelled when the worker stops. */
  addPeriodicTimer(ms: number, fn: () => unknown): Timer {
    return this.#runtime().timers.every(ms, fn)
  }

  /** Stops a timer. */
  cancelTimer(timer: Timer): void {
    timer.cancel()
  }
}

/** A worker class wmesh can instantiate: a no-argument constructor, optionally a `workerName`. */
export type WorkerClass<W extends Worker = Worker> = (new () => W) & { workerName?: string }

/** The name a worker class is reached by. */
export function workerNameOf(WorkerClass: WorkerClass): string {
  return WorkerClass.workerName ?? WorkerClass.name
}
