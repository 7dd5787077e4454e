import {
  type CallOptions,
  type Mesh,
  type NewWorkerOptions,
  type NodeInfo,
  packValue,
  type ResolveServiceOptions,
  type ResultCache,
  type ServiceInfo,
  TimeoutError,
  unpackFrame,
  type WaitOptions,
  type WorkerInfo,
  type WorkerRef,
  type WorkerSelector,
} from '@wmesh/core'
import { waitWithDeadline } from '@wmesh/core/internal'
import { checkWorkerRef } from './cluster-protocol.js'
import type { DirectRouter } from './direct-router.js'
import { rebuildError, type SerializedError } from './remote-error.js'
import type { FromThread, ThreadRequest } from './thread-protocol.js'
import { unpackTop } from './values.js'

/** Extra time the thread waits beyond a call's own timeout, which the node enforces. */
const BACKSTOP_MS = 1000
const DEFAULT_OP_TIMEOUT = 10_000

type Reply = { ok: true; value: Uint8Array } | { ok: false; error: SerializedError }

/**
 * The `Mesh` a worker sees inside its thread: every operation is a request to the node's
 * main thread, answered by a reply. Each request has a deadline here too, so a worker
 * never waits forever even if its node misbehaves.
 */
export class ThreadMesh implements Mesh {
  readonly #post: (message: FromThread) => void
  readonly #callTimeout: number
  readonly #direct: DirectRouter | undefined
  readonly #pending = new Map<number, (reply: Reply) => void>()
  #nextId = 1

  /**
   * `post` sends one message to the node (batched per tick by the caller); `direct`, when
   * given, sends calls to workers of other nodes straight to their threads.
   */
  constructor(post: (message: FromThread) => void, callTimeout: number, direct?: DirectRouter) {
    this.#post = post
    this.#callTimeout = callTimeout
    this.#direct = direct
  }

  /** Routes a `reply` message from the node to the request waiting for it. */
  onReply(id: number, reply: Reply): void {
    const settle = this.#pending.get(id)
    if (settle) {
      this.#pending.delete(id)
      settle(reply)
    }
  }

  async request(request: ThreadRequest, options: WaitOptions): Promise<Uint8Array> {
    const id = this.#nextId++
    const reply = await waitWithDeadline<Reply>(
      `${request.op} ${'target' in request ? (request.target ?? '') : ''}`.trim(),
      options,
      (resolve) => {
        this.#pending.set(id, resolve)
        this.#post({ t: 'request', id, request })
        return () => this.#pending.delete(id)
      },
    )
    if (!reply.ok) throw rebuildError(reply.error)
    return reply.value
  }

  async #callThroughNode<T>(
    target: string,
    selector: WorkerSelector,
    method: string,
    arg: unknown,
    options: CallOptions,
    timeout: number,
  ): Promise<T> {
    const bytes = await this.request(
      { op: 'call', target, selector, method, arg: packValue(arg), timeout },
      { timeout: timeout + BACKSTOP_MS, signal: options.signal },
    ).catch((error: unknown) => {
      if (error instanceof TimeoutError)
        throw new TimeoutError(`call ${target}.${method} timed out after ${timeout} ms`)
      throw error
    })
    if (selector.node === 'all') {
      // One outcome per node; errors travel serialized and are rebuilt typed here.
      const outcomes = unpackFrame(bytes) as Array<{
        node: string
        ok: boolean
        value?: unknown
        error?: SerializedError
      }>
      return outcomes.map((o) =>
        o.ok
          ? { node: o.node, ok: true, value: o.value }
          : { node: o.node, ok: false, error: rebuildError(o.error as SerializedError) },
      ) as T
    }
    return unpackTop(bytes) as T
  }

  async #castThroughNode(target: string, selector: WorkerSelector, method: string, arg: unknown): Promise<void> {
    await this.request({ op: 'cast', target, selector, method, arg: packValue(arg) }, { timeout: DEFAULT_OP_TIMEOUT })
  }

  worker(name: string, selector: WorkerSelector = {}): WorkerRef {
    checkWorkerRef(name, selector.key)
    const target = name
    const mesh = this
    return {
      call<T>(method: string, arg?: unknown, options: CallOptions = {}): Promise<T> {
        const timeout = options.timeout ?? mesh.#callTimeout
        const peer = selector.node === 'all' ? undefined : mesh.#direct?.route(target, selector, method)
        if (peer) return mesh.#direct?.caller.call(peer, method, arg, timeout, options.signal) as Promise<T>
        return mesh.#callThroughNode<T>(target, selector, method, arg, options, timeout)
      },
      cast(method: string, arg?: unknown): Promise<void> {
        const peer = selector.node === 'all' ? undefined : mesh.#direct?.route(target, selector, method)
        if (peer) return mesh.#direct?.caller.cast(peer, method, arg) as Promise<void>
        return mesh.#castThroughNode(target, selector, method, arg)
      },
      async askResult<T>(key: string, options: WaitOptions = {}): Promise<T | undefined> {
        const bytes = await mesh.request(
          { op: 'askResult', target, selector, key },
          { timeout: DEFAULT_OP_TIMEOUT, ...options },
        )
        return (unpackFrame(bytes) as [T] | [])[0]
      },
      async delete(options: WaitOptions = {}): Promise<void> {
        await mesh.request({ op: 'delete', target, selector }, { timeout: DEFAULT_OP_TIMEOUT, ...options })
      },
      async info(options: WaitOptions = {}): Promise<WorkerInfo[]> {
        const bytes = await mesh.request({ op: 'info', target, selector }, { timeout: DEFAULT_OP_TIMEOUT, ...options })
        return unpackFrame(bytes) as WorkerInfo[]
      },
    }
  }

  async newWorker(name: string, options: NewWorkerOptions): Promise<WorkerInfo> {
    const bytes = await this.request(
      { op: 'newWorker', target: name, key: options.key, data: packValue(options.data), node: options.node },
      { timeout: options.timeout ?? DEFAULT_OP_TIMEOUT, signal: options.signal },
    )
    return unpackFrame(bytes) as WorkerInfo
  }

  async workers(options: WaitOptions = {}): Promise<WorkerInfo[]> {
    const bytes = await this.request(
      { op: 'info', target: undefined, selector: {} },
      { timeout: DEFAULT_OP_TIMEOUT, ...options },
    )
    return unpackFrame(bytes) as WorkerInfo[]
  }

  async nodes(options: WaitOptions = {}): Promise<NodeInfo[]> {
    const bytes = await this.request({ op: 'nodes' }, { timeout: DEFAULT_OP_TIMEOUT, ...options })
    return unpackFrame(bytes) as NodeInfo[]
  }

  async services(options: WaitOptions = {}): Promise<ServiceInfo[]> {
    const bytes = await this.request({ op: 'services' }, { timeout: DEFAULT_OP_TIMEOUT, ...options })
    return unpackFrame(bytes) as ServiceInfo[]
  }

  async resolveService(name: string, options: ResolveServiceOptions = {}): Promise<ServiceInfo> {
    const bytes = await this.request(
      { op: 'resolveService', name, node: options.node },
      { timeout: options.timeout ?? DEFAULT_OP_TIMEOUT, signal: options.signal },
    )
    return unpackFrame(bytes) as ServiceInfo
  }

  /** The worker's result cache, kept by the node so it survives restarts of this thread. */
  cache(): ResultCache {
    const post = this.#post
    return {
      set(key: string, value: unknown) {
        post({ t: 'cache-set', key: String(key), value: packValue(value) })
      },
      delete(key: string) {
        post({ t: 'cache-delete', key: String(key) })
      },
    }
  }
}
