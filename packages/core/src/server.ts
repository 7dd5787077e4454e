import { type AddressInfo, createServer, type Server, type Socket } from 'node:net'
import { Connection, type ConnectionOptions, validateConnectionOptions } from './connection.js'
import { waitWithDeadline } from './deadline.js'
import { ListenError, WorkerStoppedError } from './errors.js'
import type { Handler, HandlerClass } from './handler.js'
import type { WorkerRuntime } from './runtime.js'

/** Options of `startServer`. */
export interface ServerOptions extends ConnectionOptions {
  /** Listen backlog passed to the kernel. */
  backlog?: number
  /** Connections above this many are refused at accept (default 10,000). */
  maxConnections?: number
  /** With host `::`, accept IPv6 only (default false: dual stack). */
  ipv6Only?: boolean
  /**
   * Name under which a node records this server in the cluster registry, so workers on
   * other nodes can `connectService(name, ...)`. Ignored outside a node.
   */
  publish?: string
}

const DEFAULT_MAX_CONNECTIONS = 10_000
const DEFAULT_SERVER_CLOSE_TIMEOUT = 10_000

/** A listening server started by `startServer`. */
export class ServerHandle {
  /** The address it is bound to. */
  readonly host: string
  /** The bound port (the real one when 0 was asked for). */
  readonly port: number
  /** The name it is published under, if any. */
  readonly publish: string | undefined
  readonly #server: Server
  readonly #connections = new Set<Connection>()
  readonly #runtime: WorkerRuntime
  #closing: Promise<void> | undefined

  /** @internal */
  constructor(server: Server, runtime: WorkerRuntime, publish: string | undefined) {
    const address = server.address() as AddressInfo
    this.host = address.address
    this.port = address.port
    this.publish = publish
    this.#server = server
    this.#runtime = runtime
  }

  /** Number of open connections accepted by this server. */
  get connections(): number {
    return this.#connections.size
  }

  /** @internal */
  track(connection: Connection): void {
    this.#connections.add(connection)
  }

  /** @internal */
  untrack(connection: Connection): void {
    this.#connections.delete(connection)
  }

  /**
   * Stops accepting, lets each open connection write what it has queued and close, and
   * destroys those still open after `timeout` ms (default 10 s; Infinity: never). Idempotent.
   */
  close(options: { timeout?: number } = {}): Promise<void> {
    const timeout = options.timeout ?? DEFAULT_SERVER_CLOSE_TIMEOUT
    if (!(timeout >= 0)) {
      return Promise.reject(new RangeError(`close timeout must be a number of ms from 0, or Infinity, got ${timeout}`))
    }
    this.#closing ??= this.#close(timeout)
    return this.#closing
  }

  /** Stops accepting and closes every connection now. */
  destroy(): void {
    this.#server.close()
    this.#unregister()
    for (const connection of [...this.#connections]) connection.fail(undefined)
  }

  #unregister(): void {
    if (!this.#runtime.servers.delete(this)) return
    if (this.publish !== undefined) this.#runtime.onUnpublish?.(this)
  }

  async #close(timeout: number): Promise<void> {
    const stopped = new Promise<void>((resolve) => this.#server.close(() => resolve()))
    this.#unregister()
    const open = [...this.#connections]
    const closed = open.map(
      (c) =>
        new Promise<void>((resolve) => (c.state === 'closed' ? resolve() : c.socket.once('close', () => resolve()))),
    )
    for (const connection of open) connection.end()
    const all = Promise.all([stopped, ...closed])
    try {
      // waitWithDeadline sets no timer for a wait longer than a timer holds (stopTimeout Infinity).
      await waitWithDeadline<void>('server close', { timeout }, (resolve) => {
        all.then(() => resolve())
        return () => {}
      })
    } catch {
      for (const connection of open) connection.fail(undefined)
      await all
    }
  }
}

/** Binds a server whose accepted sockets each get a new `HandlerClass` instance. */
export function listen<H extends Handler>(
  runtime: WorkerRuntime,
  worker: unknown,
  host: string,
  port: number,
  HandlerClass: HandlerClass<H>,
  onAccepted: ((handler: H) => void) | undefined,
  options: ServerOptions,
): Promise<ServerHandle> {
  validateConnectionOptions(options)
  const server = createServer({ noDelay: true })
  server.maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS
  let handle: ServerHandle | undefined
  server.on('connection', (socket: Socket) => {
    if (!handle || runtime.stopped) {
      socket.destroy()
      return
    }
    const owner = handle
    const peer = {
      address: socket.remoteAddress ?? '',
      port: socket.remotePort ?? 0,
      family: socket.remoteFamily ?? '',
    }
    let connection: Connection
    try {
      connection = new Connection(socket, new HandlerClass(), 'open', peer, options, {
        logger: runtime.logger,
        worker,
        onClosed: (c) => {
          runtime.connections.delete(c)
          owner.untrack(c)
        },
      })
    } catch (error) {
      // A handler constructor that throws costs this connection only.
      socket.destroy()
      runtime.logger.error(
        { component: 'core:server', err: error },
        `cannot accept connection: ${HandlerClass.name} constructor threw: ${(error as Error)?.message}`,
      )
      return
    }
    runtime.connections.add(connection)
    owner.track(connection)
    connection.accept(onAccepted as ((handler: Handler) => void) | undefined)
  })
  server.on('drop', (data) => {
    runtime.logger.warn(
      { component: 'core:server', peer: `${data?.remoteAddress}:${data?.remotePort}` },
      'connection refused: server is at maxConnections',
    )
  })
  return new Promise<ServerHandle>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void =>
      reject(new ListenError(`cannot listen on ${host}:${port}: ${error.code ?? error.message}`, { cause: error }))
    server.once('error', onError)
    server.listen({ host, port, backlog: options.backlog, ipv6Only: options.ipv6Only }, () => {
      server.off('error', onError)
      if (runtime.stopped) {
        // The worker stopped while we were binding: nobody would ever close this server.
        server.close()
        reject(new WorkerStoppedError(`worker stopped before ${host}:${port} was bound`))
        return
      }
      server.on('error', (error) =>
        runtime.logger.error({ component: 'core:server', err: error }, `server error: ${error.message}`),
      )
      handle = new ServerHandle(server, runtime, options.publish)
      runtime.servers.add(handle)
      if (options.publish !== undefined) runtime.onPublish?.(handle, validateConnectionOptions(options).name)
      resolve(handle)
    })
  })
}
