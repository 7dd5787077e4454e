import { NodeDownError, TimeoutError, WorkerDownError } from '@wmesh/core'
import type { Logger } from 'pino'
import { Deadlines } from './deadlines.js'
import { DIRECT, fromWire, parseCalleeMessage } from './direct-protocol.js'
import type { DirectInit } from './direct-server.js'
import type { Link } from './link.js'
import { dialLink } from './link-dial.js'
import { rebuildError } from './remote-error.js'

/** A worker instance on another node that takes direct calls. */
export interface DirectEndpoint {
  /** Name of the node it runs on. */
  node: string
  host: string
  port: number
  /** How to name it in errors, e.g. `echo#0`. */
  label: string
}

/** One endpoint's link and the calls waiting on it. */
export interface DirectPeer {
  endpoint: DirectEndpoint
  state: 'dialing' | 'up' | 'away' | 'down'
  link: Link | undefined
  failures: number
  retryAt: number
  wasUp: boolean
  readonly pending: Map<number, PendingCall>
}

/**
 * One call waiting for its answer. A class rather than closures: at tens of thousands of
 * calls a second, allocation is what the profile shows.
 */
class PendingCall {
  readonly peer: DirectPeer
  readonly id: number
  readonly method: string
  readonly #deadlines: Deadlines<PendingCall>
  resolve!: (value: unknown) => void
  reject!: (error: Error) => void
  deadline = 0
  timeout = 0
  #abort: { signal: AbortSignal; listener: () => void } | undefined

  constructor(peer: DirectPeer, id: number, method: string, deadlines: Deadlines<PendingCall>) {
    this.peer = peer
    this.id = id
    this.method = method
    this.#deadlines = deadlines
  }

  get what(): string {
    return `call ${this.peer.endpoint.label}.${this.method}`
  }

  watch(signal: AbortSignal): void {
    const listener = (): void => this.fail(this.aborted())
    this.#abort = { signal, listener }
    signal.addEventListener('abort', listener, { once: true })
  }

  settle(value: unknown): void {
    this.#finish()
    this.resolve(value)
  }

  fail(error: Error): void {
    this.#finish()
    this.reject(error)
  }

  aborted(): TimeoutError {
    return new TimeoutError(`${this.what} was aborted`)
  }

  #finish(): void {
    const { peer } = this
    peer.pending.delete(this.id)
    this.#deadlines.delete(this)
    this.#abort?.signal.removeEventListener('abort', this.#abort.listener)
    // A link kept only for calls in flight goes with the last of them.
    if (peer.state === 'away' && peer.pending.size === 0) peer.link?.close()
  }
}

function expire(call: PendingCall): void {
  call.fail(new TimeoutError(`${call.what} timed out after ${call.timeout} ms`))
}

const CONNECT_TIMEOUT = 2000
const DONE = Promise.resolve()
const MAX_RETRY_DELAY = 30_000

/**
 * The caller end of direct links, one per worker thread. A call goes direct only over a
 * link that is already up; until then (and whenever an endpoint cannot be reached) calls
 * take the path through the nodes, so a blocked port costs speed, never a call.
 */
export class DirectCaller {
  readonly #init: DirectInit & { localId: string }
  readonly #logger: Logger
  readonly #peers = new Map<string, DirectPeer>()
  readonly #deadlines = new Deadlines<PendingCall>(expire)
  #nextId = 1
  #closed = false

  constructor(init: DirectInit & { localId: string }, components: { logger: Logger }) {
    this.#init = init
    this.#logger = components.logger.child({ component: 'mesh:direct' })
  }

  /**
   * The peer to call `endpoint` through now, or undefined to go through the nodes this
   * time; starts dialing when there is no link yet.
   */
  peer(endpoint: DirectEndpoint, key = `${endpoint.host}:${endpoint.port}`): DirectPeer | undefined {
    let peer = this.#peers.get(key)
    if (!peer) {
      peer = { endpoint, state: 'down', link: undefined, failures: 0, retryAt: 0, wasUp: false, pending: new Map() }
      this.#peers.set(key, peer)
    }
    if (peer.state === 'up') return peer
    if (peer.state === 'down' && Date.now() >= peer.retryAt && !this.#closed) this.#dial(key, peer)
    return undefined
  }

  /** Calls `method` over the peer's link; settles within `timeout` ms or on `signal`. */
  call(
    peer: DirectPeer,
    method: string,
    arg: unknown,
    timeout: number,
    signal: AbortSignal | undefined,
  ): Promise<unknown> {
    const call = new PendingCall(peer, this.#nextId++, method, this.#deadlines)
    if (signal?.aborted) return Promise.reject(call.aborted())
    const promise = new Promise<unknown>((resolve, reject) => {
      call.resolve = resolve
      call.reject = reject
    })
    peer.pending.set(call.id, call)
    this.#deadlines.add(call, timeout)
    if (signal) call.watch(signal)
    try {
      ;(peer.link as Link).send([DIRECT.CALL, call.id, method, arg])
    } catch (error) {
      call.fail(error as Error)
    }
    return promise
  }

  /** Sends a cast; resolves once it is queued, after waiting out backpressure. */
  cast(peer: DirectPeer, method: string, arg: unknown): Promise<void> {
    const link = peer.link as Link
    try {
      return link.send([DIRECT.CAST, method, arg]) ? DONE : link.drained()
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** Closes links to endpoints no longer listed (instances that stopped or moved). */
  retain(keep: Set<string>): void {
    for (const [key, peer] of this.#peers) {
      if (keep.has(key)) continue
      this.#peers.delete(key)
      // Calls in flight get their answers or their deadline; the link goes when they are done.
      if (peer.pending.size === 0) peer.link?.close()
      else peer.state = 'away'
    }
  }

  /** Closes every link; calls in flight fail with `WorkerDownError`. Idempotent. */
  close(): void {
    this.#closed = true
    for (const peer of this.#peers.values()) peer.link?.destroy()
    this.#peers.clear()
    this.#deadlines.clear()
  }

  #dial(key: string, peer: DirectPeer): void {
    peer.state = 'dialing'
    const { host, port } = peer.endpoint
    const { cluster, secret, tls, heartbeatInterval, heartbeatTimeout, localId } = this.#init
    dialLink(
      { host, port, tls, connectTimeout: CONNECT_TIMEOUT },
      { role: 'dialer', cluster, secret, localId, localKind: 'node', heartbeatInterval, heartbeatTimeout },
      { logger: this.#logger },
    ).then(
      (link) => {
        if (this.#closed || this.#peers.get(key) !== peer) {
          link.close()
          return
        }
        peer.link = link
        peer.state = 'up'
        peer.wasUp = true
        peer.failures = 0
        link.on('message', (raw) => this.#onMessage(peer, raw))
        link.on('close', (error) => this.#onClose(peer, link, error))
      },
      (error: Error & { code?: string }) => {
        peer.state = 'down'
        peer.failures++
        peer.retryAt = Date.now() + Math.min(MAX_RETRY_DELAY, 500 * 2 ** Math.min(peer.failures, 10))
        // Once per endpoint that never answered (a blocked port); a worker that went away is expected.
        const level = peer.failures === 1 && !peer.wasUp ? 'info' : 'debug'
        this.#logger[level](
          { peer: key, code: error.code },
          `no direct link to ${peer.endpoint.label} on ${peer.endpoint.node} (${error.message}); calls go through the nodes`,
        )
      },
    )
  }

  #onMessage(peer: DirectPeer, raw: unknown): void {
    const message = parseCalleeMessage(raw)
    if (!message) {
      this.#logger.warn({ peer: peer.endpoint.node }, 'closing direct link: the peer sent a malformed message')
      peer.link?.destroy()
      return
    }
    switch (message[0]) {
      case DIRECT.OK:
        peer.pending.get(message[1])?.settle(fromWire(message[2]))
        break
      case DIRECT.ERR:
        peer.pending.get(message[1])?.fail(rebuildError(message[2]))
        break
      case DIRECT.GOAWAY:
        // The worker is stopping: new calls take the path through the nodes, which knows where else to go.
        peer.state = 'away'
        if (peer.pending.size === 0) peer.link?.close()
        break
    }
  }

  #onClose(peer: DirectPeer, link: Link, error: Error | undefined): void {
    if (peer.link !== link) return
    peer.link = undefined
    // A worker that said goodbye is gone for good: a restarted one listens on a new port.
    if (peer.state !== 'away') {
      peer.state = 'down'
      peer.retryAt = Date.now() + 100
    }
    const { label, node } = peer.endpoint
    const silent = (error as { code?: string } | undefined)?.code === 'ERR_HEARTBEAT_TIMEOUT'
    for (const call of [...peer.pending.values()]) {
      call.fail(
        silent
          ? new NodeDownError(`node ${node} stopped answering during ${call.what}`)
          : new WorkerDownError(`${label} on node ${node} went down before answering (${call.what})`),
      )
    }
  }
}
