import { NodeDownError } from '@wmesh/core'
import { waitWithDeadline } from '@wmesh/core/internal'
import type { Logger } from 'pino'
import { type ClusterMessage, type ClusterOp, checkWireName } from './cluster-protocol.js'
import type { Link } from './link.js'
import { rebuildError, relayError, type SerializedError } from './remote-error.js'

/** What the request table asks of its cluster. */
export interface RemoteRequestsComponents {
  /** The cluster's logger. */
  logger: Logger
  /** The live links, by peer id. */
  links: ReadonlyMap<string, Link>
  /** Sends a message, dropping it (with a debug line) if the link is closing. */
  send(link: Link, message: ClusterMessage): void
  /** Serves a call from another node or a client; resolves to the encoded result. */
  serveCall(message: Extract<ClusterMessage, { t: 'call' }>, fromClient: boolean): Promise<Uint8Array>
  /** Serves an operation from another node or a client. */
  serveOp(op: ClusterOp, fromClient: boolean, node: string | undefined): Promise<Uint8Array>
}

interface Pending {
  resolve(value: Uint8Array): void
  reject(error: Error): void
}

/**
 * Calls and operations between nodes, both ways: sends this node's with ids and matches
 * the results to them (or times them out), and serves those of peers and clients,
 * replying on the link they came over. A request in flight on a link that drops fails
 * with `NodeDownError` at once.
 */
export class RemoteRequests {
  readonly #components: RemoteRequestsComponents
  readonly #logger: Logger
  readonly #pending = new Map<Link, Map<number, Pending>>()
  #nextId = 1

  constructor(components: RemoteRequestsComponents) {
    this.#components = components
    this.#logger = components.logger
  }

  /**
   * Sends a call to a peer; resolves to its encoded result. Once `signal` aborts it
   * rejects with `AbortError` (the peer may still run it; its answer is dropped).
   */
  call(
    peerId: string,
    call: Omit<Extract<ClusterMessage, { t: 'call' }>, 't' | 'id'>,
    signal?: AbortSignal,
  ): Promise<Uint8Array> {
    try {
      checkWireName('method', call.method)
    } catch (error) {
      return Promise.reject(error)
    }
    return this.#request(
      peerId,
      (id) => ({ t: 'call', id, ...call }),
      call.cast ? undefined : call.timeout,
      `${call.target}.${call.method}`,
      signal,
    )
  }

  /**
   * Sends a cast to a peer now. Throws what keeps it from leaving (no link, a value too
   * large for a frame, a full queue): a cast has no promise anyone would be waiting on.
   */
  cast(peerId: string, call: Omit<Extract<ClusterMessage, { t: 'call' }>, 't' | 'id' | 'cast'>): void {
    checkWireName('method', call.method)
    const link = this.#components.links.get(peerId)
    if (!link) throw new NodeDownError(`no link to ${peerId}`)
    link.send({ t: 'call', id: this.#nextId++, ...call, cast: true } satisfies ClusterMessage)
  }

  /** Sends an operation to a peer; resolves to its encoded result. */
  op(peerId: string, op: ClusterOp, timeout: number, node?: string): Promise<Uint8Array> {
    return this.#request(peerId, (id) => ({ t: 'op', id, op, node }), timeout, op.op)
  }

  /** Fails every request still waiting for an answer over `link`, which has closed. */
  failPending(link: Link, reason: string): void {
    const pending = this.#pending.get(link)
    if (!pending) return
    this.#pending.delete(link)
    for (const call of pending.values()) {
      call.reject(new NodeDownError(`${link.peerId} went down before answering (${reason})`))
    }
  }

  /** Serves a call that came over `link`; replies unless it is a cast. */
  onCall(link: Link, message: Extract<ClusterMessage, { t: 'call' }>, fromClient: boolean): void {
    // A cast that cannot be routed throws synchronously; it must not escape into the
    // link's listener, which would tear the link down.
    Promise.resolve()
      .then(() => this.#components.serveCall(message, fromClient))
      .then(
        (value) => !message.cast && this.#reply(link, message.id, value),
        (error: unknown) => {
          if (!message.cast) this.#fail(link, message.id, error)
          else this.#logger.debug({ peer: link.peerId, err: (error as Error).message }, 'cast from a peer dropped')
        },
      )
  }

  /** Serves an operation that came over `link` and replies. */
  onOp(link: Link, message: Extract<ClusterMessage, { t: 'op' }>, fromClient: boolean): void {
    Promise.resolve()
      .then(() => this.#components.serveOp(message.op, fromClient, message.node ?? undefined))
      .then(
        (value) => this.#reply(link, message.id, value),
        (error: unknown) => this.#fail(link, message.id, error),
      )
  }

  /** Settles the request a result answers; a result for none (timed out, say) is ignored. */
  onResult(link: Link, message: Extract<ClusterMessage, { t: 'result' }>): void {
    const call = this.#pending.get(link)?.get(message.id)
    if (!call) return
    this.#pending.get(link)?.delete(message.id)
    if (message.ok) call.resolve(message.value)
    else call.reject(rebuildError(message.error as SerializedError))
  }

  /** Sends a result; one that cannot be sent (too large, say) goes back as that error instead. */
  #reply(link: Link, id: number, value: Uint8Array): void {
    if (link.closed) return
    try {
      link.send({ t: 'result', id, ok: true, value } satisfies ClusterMessage)
    } catch (error) {
      this.#fail(link, id, error)
    }
  }

  #fail(link: Link, id: number, error: unknown): void {
    this.#components.send(link, { t: 'result', id, ok: false, error: relayError(error) })
  }

  #request(
    peerId: string,
    build: (id: number) => ClusterMessage,
    timeout: number | undefined,
    what: string,
    signal?: AbortSignal,
  ): Promise<Uint8Array> {
    const link = this.#components.links.get(peerId)
    if (!link) return Promise.reject(new NodeDownError(`no link to ${peerId}`))
    const id = this.#nextId++
    const message = build(id)
    if (timeout === undefined) {
      try {
        link.send(message)
      } catch (error) {
        return Promise.reject(error)
      }
      return Promise.resolve(new Uint8Array())
    }
    return waitWithDeadline<Uint8Array>(`${what} on ${peerId}`, { timeout, signal }, (resolve, reject) => {
      let table = this.#pending.get(link)
      if (!table) {
        table = new Map()
        this.#pending.set(link, table)
      }
      const pending = table
      pending.set(id, { resolve, reject })
      try {
        link.send(message)
      } catch (error) {
        // Too large, not encodable, queue full or link closing: say so now, not at the deadline.
        reject(error as Error)
      }
      // However the wait ends (answer, deadline, abort, link down): forget the id.
      return () => pending.delete(id)
    })
  }
}
