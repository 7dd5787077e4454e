import { AbortError, NodeDownError, TimeoutError, WorkerDownError } from '@wmesh/core'
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
  /** What its port must prove it is in the handshake (`directIdentity`). */
  id: string
  /** How to name it in errors, e.g. `echo#0`. */
  label: string
}

/** One link per worker instance: a port reused by another instance is another peer. */
export function endpointKey(endpoint: Pick<DirectEndpoint, 'host' | 'port' | 'id'>): string {
  return `${endpoint.host}:${endpoint.port}/${endpoint.id}`
}

/** One endpoint's link and the calls waiting on it. */
export interface DirectPeer {
  endpoint: DirectEndpoint
  state: 'dialing' | 'up' | 'away' | 'down'
  link: Link | undefined
  failures: number
  retryAt: number
  wasUp: boolean
  /** Set while calls of a closed link wait to learn whether the worker or its node went. */
  verdict: NodeJS.Timeout | undefined
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

  aborted(): AbortError {
    return new AbortError(`${this.what} was aborted`, { cause: this.#abort?.signal.reason })
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
/** How long calls of a link that closed wait for the node's view to say why, at most. */
const VERDICT_GRACE_MS = 1000
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
  /** Peers no longer listed whose links wait for their last answers. */
  readonly #away = new Set<DirectPeer>()
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
  peer(endpoint: DirectEndpoint, key = endpointKey(endpoint)): DirectPeer | undefined {
    let peer = this.#peers.get(key)
    if (!peer) {
      peer = {
        endpoint,
        state: 'down',
        link: undefined,
        failures: 0,
        retryAt: 0,
        wasUp: false,
        verdict: undefined,
        pending: new Map(),
      }
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
    // As on the path through the node, a timeout that is not a number of ms acts as 1 ms.
    this.#deadlines.add(call, timeout >= 0 ? timeout : 1)
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

  /**
   * Applies a new view: `keep` are the endpoints still listed, `nodes` the names of the
   * nodes in it. Calls to a node that left fail with `NodeDownError` (as through the
   * nodes); links to endpoints no longer listed close once their calls are answered.
   */
  retain(keep: Set<string>, nodes: Set<string>): void {
    for (const [key, peer] of this.#peers) {
      const nodeGone = !nodes.has(peer.endpoint.node)
      if (peer.verdict !== undefined && (nodeGone || !keep.has(key))) this.#failOrphans(peer, nodeGone)
      if (keep.has(key)) continue
      this.#peers.delete(key)
      if (nodeGone) {
        this.#failAll(peer, true)
        peer.link?.destroy()
      } else if (peer.pending.size === 0) peer.link?.close()
      else {
        // Calls in flight get their answers or their deadline; the link goes when they are done.
        peer.state = 'away'
        this.#away.add(peer)
      }
    }
    // Links kept for their last answers: a node that left takes those calls with it too.
    for (const peer of this.#away) {
      if (nodes.has(peer.endpoint.node)) continue
      this.#away.delete(peer)
      // Its link may have closed already, its calls waiting for a verdict: this is the verdict.
      this.#failOrphans(peer, true)
      this.#failAll(peer, true)
      peer.link?.destroy()
    }
  }

  /** Closes every link; calls in flight fail with `WorkerDownError`. Idempotent. */
  close(): void {
    this.#closed = true
    for (const peer of [...this.#peers.values(), ...this.#away]) {
      peer.link?.destroy()
      this.#failOrphans(peer, false)
    }
    this.#peers.clear()
    this.#away.clear()
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
    )
      .then((link) => {
        // A stale view: the port is open, but another worker instance (or node) listens on it now.
        if (link.peerId === peer.endpoint.id) return link
        link.destroy()
        throw Object.assign(new Error('its port now belongs to another worker'), { code: 'ERR_STALE_ENDPOINT' })
      })
      .then(
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
    if (
      peer.pending.size === 0 ||
      this.#closed ||
      (error as { code?: string } | undefined)?.code === 'ERR_HEARTBEAT_TIMEOUT'
    ) {
      this.#away.delete(peer)
      this.#failAll(peer, !this.#closed)
      return
    }
    // A closed socket does not say whether the worker's thread or its whole node went: the
    // node's view does, a moment later (retain), so calls fail with the same error as through
    // the nodes. No new direct calls to this endpoint until then. A link kept 'away' stays in
    // #away meanwhile, where retain() and close() still reach its calls.
    peer.retryAt = Number.POSITIVE_INFINITY
    peer.verdict = setTimeout(() => {
      this.#away.delete(peer)
      this.#failOrphans(peer, false)
    }, VERDICT_GRACE_MS)
  }

  /** Fails the calls of a link that closed, once it is known why. */
  #failOrphans(peer: DirectPeer, nodeDown: boolean): void {
    if (peer.verdict === undefined) return
    clearTimeout(peer.verdict)
    peer.verdict = undefined
    peer.retryAt = Date.now() + 100
    this.#failAll(peer, nodeDown)
  }

  #failAll(peer: DirectPeer, nodeDown: boolean): void {
    const { label, node } = peer.endpoint
    for (const call of [...peer.pending.values()]) {
      call.fail(
        nodeDown
          ? new NodeDownError(`node ${node} went down during ${call.what}`)
          : new WorkerDownError(`${label} on node ${node} went down before answering (${call.what})`),
      )
    }
  }
}
