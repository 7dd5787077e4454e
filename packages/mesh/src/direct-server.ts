import type { Server, Socket } from 'node:net'
import { ListenError, NoSuchMethodError } from '@wmesh/core'
import type { Logger } from 'pino'
import { DIRECT, fromWire, parseCallerMessage } from './direct-protocol.js'
import { Link } from './link.js'
import { createLinkServer } from './link-dial.js'
import { type SerializedError, serializeError } from './remote-error.js'

/** How a worker thread's direct links are authenticated: the same secret and cluster as its node's links. */
export interface DirectInit {
  /** Id (name:incarnation) of the node the thread belongs to. */
  nodeId: string
  cluster: string
  secret: Uint8Array
  tls: boolean
  /** Host to listen on: the node's listen host. */
  host: string
  heartbeatInterval: number
  heartbeatTimeout: number
}

export interface DirectServerComponents {
  logger: Logger
  /** Whether the worker is ready and has this public method. */
  hasMethod(method: string): boolean
  /** Runs a public method of this thread's worker: its value or promise; throws what it threw. */
  invoke(method: string, arg: unknown): unknown
  /** A cast's method threw: nobody waits for it, so it is only reported. */
  castFailed(method: string, error: unknown): void
}

/**
 * The callee end of direct links: a worker thread listens on a port of its own, and
 * authenticated workers of other nodes call it there without passing through either
 * node's main thread. Same handshake, secret, TLS and limits as node links.
 */
export class DirectServer {
  readonly #init: DirectInit
  /** What this port proves it is in the handshake (`directIdentity`). */
  readonly #identity: string
  readonly #components: DirectServerComponents
  readonly #server: Server
  readonly #links = new Set<Link>()
  readonly #idleWaiters: Array<() => void> = []
  #draining = false
  port = 0

  private constructor(init: DirectInit, identity: string, components: DirectServerComponents) {
    this.#init = init
    this.#identity = identity
    this.#components = components
    this.#server = createLinkServer(
      init.tls ? init : undefined,
      (socket) => this.#accept(socket),
      (error, socket) =>
        components.logger.warn(
          { peer: socket.remoteAddress, err: error.message },
          'refused direct link: TLS handshake failed',
        ),
    )
    this.#server.maxConnections = 4096
  }

  /** Listens on an ephemeral port of `init.host`, as the worker instance `identity` (`directIdentity`). */
  static async listen(init: DirectInit, identity: string, components: DirectServerComponents): Promise<DirectServer> {
    const server = new DirectServer(init, identity, components)
    await new Promise<void>((resolve, reject) => {
      server.#server.once('error', (error: NodeJS.ErrnoException) =>
        reject(new ListenError(`cannot listen for direct calls on ${init.host}: ${error.code ?? error.message}`)),
      )
      server.#server.listen({ host: init.host, port: 0 }, () => resolve())
    })
    server.#server.on('error', (error) => components.logger.error({ err: error }, `direct server: ${error.message}`))
    server.port = (server.#server.address() as { port: number }).port
    return server
  }

  /**
   * Stops taking calls: the listener closes and callers are told to go through the nodes.
   * Calls they sent before hearing it are still served; each caller closes its link once
   * its calls are answered. After `timeout` ms whatever is left is closed. Idempotent.
   */
  async drain(timeout: number): Promise<void> {
    if (!this.#draining) {
      this.#draining = true
      this.#server.close()
      for (const link of this.#links) this.#send(link, [DIRECT.GOAWAY])
    }
    if (this.#links.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeout)
        this.#idleWaiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
    for (const link of this.#links) link.close()
  }

  /** Wakes `drain` once every caller has gone. */
  #checkIdle(): void {
    if (this.#draining && this.#links.size === 0) for (const wake of this.#idleWaiters.splice(0)) wake()
  }

  #accept(socket: Socket): void {
    if (this.#draining) {
      socket.destroy()
      return
    }
    const { cluster, secret, heartbeatInterval, heartbeatTimeout } = this.#init
    Link.establish(
      socket,
      {
        role: 'acceptor',
        cluster,
        secret,
        localId: this.#identity,
        localKind: 'node',
        heartbeatInterval,
        heartbeatTimeout,
      },
      { logger: this.#components.logger },
    ).then(
      (link) => {
        if (link.peerKind !== 'node') {
          this.#components.logger.warn({ peer: link.peerId }, 'refused direct link: only nodes call workers directly')
          link.destroy()
          return
        }
        this.#links.add(link)
        link.on('message', (raw) => this.#onMessage(link, raw))
        link.on('close', () => {
          this.#links.delete(link)
          this.#checkIdle()
        })
        if (this.#draining) {
          this.#send(link, [DIRECT.GOAWAY])
          link.close()
        }
      },
      // The link layer has logged the refusal once, with its reason.
      () => {},
    )
  }

  #onMessage(link: Link, raw: unknown): void {
    const message = parseCallerMessage(raw)
    if (!message) {
      this.#components.logger.warn({ peer: link.peerId }, 'closing direct link: the peer sent a malformed message')
      link.destroy()
      return
    }
    if (message[0] === DIRECT.CAST) {
      const [, method, arg] = message
      if (!this.#components.hasMethod(method)) {
        this.#components.castFailed(method, new NoSuchMethodError(`this worker has no public method "${method}"`))
        return
      }
      const failed = (error: unknown): void => this.#components.castFailed(method, error)
      try {
        const result = this.#components.invoke(method, fromWire(arg))
        if (isThenable(result)) result.then(undefined, failed)
      } catch (error) {
        failed(error)
      }
      return
    }
    if (message[0] !== DIRECT.CALL) return
    const [, id, method, arg] = message
    if (!this.#components.hasMethod(method)) {
      const error = new NoSuchMethodError(`this worker has no public method "${method}"`)
      this.#send(link, [DIRECT.ERR, id, serializeError(error, false)])
      return
    }
    // A method that answers at once is answered at once: no promise per call.
    let result: unknown
    try {
      result = this.#components.invoke(method, fromWire(arg))
    } catch (error) {
      this.#answer(link, id, undefined, serializeError(error, true))
      return
    }
    if (!isThenable(result)) this.#answer(link, id, result, undefined)
    else
      result.then(
        (value) => this.#answer(link, id, value, undefined),
        (error: unknown) => this.#answer(link, id, undefined, serializeError(error, true)),
      )
  }

  #answer(link: Link, id: number, value: unknown, error: SerializedError | undefined): void {
    if (error) {
      this.#send(link, [DIRECT.ERR, id, error])
      return
    }
    try {
      if (!link.closed) link.send([DIRECT.OK, id, value])
    } catch (encodeError) {
      // A full queue is the caller's doing (it does not read): that ends its link, below.
      if ((encodeError as { code?: string }).code === 'ERR_WRITE_QUEUE_FULL') this.#drop(link, encodeError as Error)
      // A result that cannot be encoded (a function, a frame too large) fails this call only.
      else this.#send(link, [DIRECT.ERR, id, serializeError(encodeError, true)])
    }
  }

  /** Sends, or ends the link of a caller that does not read what we send (never throws). */
  #send(link: Link, message: unknown): void {
    try {
      if (!link.closed) link.send(message)
    } catch (error) {
      this.#drop(link, error as Error)
    }
  }

  #drop(link: Link, error: Error): void {
    this.#components.logger.warn(
      { peer: link.peerId, code: (error as { code?: string }).code },
      `closing direct link: ${error.message}`,
    )
    link.destroy(error)
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}
