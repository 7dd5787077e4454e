import { randomBytes } from 'node:crypto'
import { Worker as Thread } from 'node:worker_threads'
import { WorkerDownError, type WorkerInfo } from '@wmesh/core'
import type { Logger } from 'pino'
import { Backoff } from './backoff.js'
import type { RestartPolicy } from './config.js'
import { instanceLabel } from './direct-protocol.js'
import { PortBatch } from './port-batch.js'
import { rebuildError, type SerializedError } from './remote-error.js'
import type { FromThread, ThreadInit, ThreadRequest, ToThread } from './thread-protocol.js'

/** One call handed to an instance, waiting for its result. */
export interface PendingCall {
  resolve(value: Uint8Array): void
  reject(error: Error): void
}

/** What defines one worker instance. */
export interface SlotSpec {
  file: string
  /** Name from the config, or undefined to take the module's `workerName`. */
  name: string | undefined
  key: string | undefined
  instance: number | undefined
  /** Arguments of `create`, MessagePack-encoded; undefined to ask the node once the name is known. */
  args: Uint8Array | undefined
  restart: RestartPolicy
}

/** What a slot needs from its node. */
export interface SlotComponents {
  logger: Logger
  node: string
  logLevel: string
  callTimeout: number
  /** Direct-call settings for threads (the thread id is added per thread), or undefined for none. */
  direct: Omit<NonNullable<ThreadInit['direct']>, 'localId'> | undefined
  /** Where worker threads' log lines go (stdout, or the pretty printer). */
  logSink: NodeJS.WritableStream
  /** A request from the worker (call another worker, newWorker, ...); answer through `respond`. */
  onRequest(slot: WorkerSlot, request: ThreadRequest, respond: (reply: ToThread) => void, id: number): void
  onCache(slot: WorkerSlot, key: string, value: Uint8Array | undefined): void
  /** Called on every state change, e.g. to update the registry. */
  onState(slot: WorkerSlot): void
  /** `create` arguments for a slot whose spec has none, once its module has told its name. */
  argsFor(slot: WorkerSlot): Uint8Array
  /** The worker published a server (`startServer(..., { publish })`). */
  onPublish(slot: WorkerSlot, service: { name: string; host: string; port: number; codec: string }): void
  /** A published server closed. */
  onUnpublish(slot: WorkerSlot, port: number): void
}

/** The module could not be loaded or exports no Worker class. */
export class WorkerLoadError extends Error {
  readonly code = 'ERR_WORKER_LOAD'
}

const THREAD_ENTRY = new URL('./worker-thread.js', import.meta.url)

/**
 * One worker instance and its supervision: runs it in a thread of its own, restarts it
 * with backoff when it throws, rejects or exits, and fails every call in flight at once
 * when its thread ends.
 */
export class WorkerSlot {
  readonly spec: SlotSpec
  name: string
  state: WorkerInfo['state'] = 'starting'
  restarts = 0
  lastExit: string | undefined
  startedAt: number | undefined
  methods: string[] = []
  /** Port where the current thread takes direct calls, if it does. */
  direct: number | undefined
  #methodSet = new Set<string>()
  readonly #components: SlotComponents
  readonly #backoff: Backoff
  readonly #pending = new Map<number, PendingCall>()
  #thread: Thread | undefined
  /** Batches messages to the current thread. */
  #outbox: PortBatch<ToThread> | undefined
  #restartTimer: ReturnType<typeof setTimeout> | undefined
  #stopping = false
  #loadFailed = false
  #stopped: Promise<void> | undefined
  /** Settles the first start: loaded and created (or crashed), or failed to load. */
  #firstStart: { resolve: () => void; reject: (error: Error) => void } | undefined

  constructor(spec: SlotSpec, components: SlotComponents) {
    this.spec = spec
    this.name = spec.name ?? spec.file
    this.#components = components
    this.#backoff = new Backoff(spec.restart)
  }

  get key(): string | undefined {
    return this.spec.key
  }

  /** Restarts after the next crash follow `policy` (a directory slot learns its worker's policy on load). */
  useRestartPolicy(policy: RestartPolicy): void {
    this.#backoff.use(policy)
  }

  get running(): boolean {
    return this.state === 'running'
  }

  /** True if the worker has a public method of this name. */
  hasMethod(method: string): boolean {
    return this.#methodSet.has(method)
  }

  get inFlight(): number {
    return this.#pending.size
  }

  get label(): string {
    return instanceLabel(this.name, this.spec.key, this.spec.instance)
  }

  info(): WorkerInfo {
    return {
      name: this.name,
      key: this.spec.key,
      instance: this.spec.instance,
      node: this.#components.node,
      state: this.state,
      restarts: this.restarts,
      lastExit: this.lastExit,
      startedAt: this.startedAt,
      methods: this.methods,
    }
  }

  /**
   * Starts the first thread. Resolves once the worker has run `create` (or crashed in it:
   * supervision takes over); rejects with `WorkerLoadError` if the module cannot be loaded.
   */
  start(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#firstStart = { resolve, reject }
      this.#spawn()
    })
  }

  /** Hands a call to this instance's thread. */
  dispatch(id: number, method: string, arg: Uint8Array, cast: boolean, pending: PendingCall | undefined): void {
    const thread = this.#thread
    if (!thread || this.state !== 'running') {
      pending?.reject(new WorkerDownError(`${this.label} is ${this.state}`))
      return
    }
    if (pending) this.#pending.set(id, pending)
    this.#outbox?.push({ t: 'call', id, method, arg, cast })
  }

  /** Sends the thread the node's current view, for its direct calls. */
  sendDirectory(message: Extract<ToThread, { t: 'directory' }>): void {
    if (this.#thread && this.#components.direct) this.#outbox?.push(message)
  }

  /** Drops a call that timed out; a late result is ignored. */
  forget(id: number): void {
    this.#pending.delete(id)
  }

  /**
   * Stops the instance: its worker's `onStop` runs and its connections close, within
   * `timeout` ms; after that the thread is terminated. Idempotent.
   */
  stop(timeout: number): Promise<void> {
    this.#stopped ??= this.#stop(timeout)
    return this.#stopped
  }

  async #stop(timeout: number): Promise<void> {
    this.#stopping = true
    if (this.#restartTimer !== undefined) clearTimeout(this.#restartTimer)
    const thread = this.#thread
    if (!thread) {
      this.#setState('stopped')
      this.#settleFirstStart()
      return
    }
    this.#setState('stopping')
    const exited = new Promise<void>((resolve) => thread.once('exit', () => resolve()))
    this.#outbox?.push({ t: 'stop', timeout })
    const timer = setTimeout(() => {
      this.#components.logger.warn(
        { worker: this.label },
        `worker did not stop within ${timeout} ms; terminating its thread`,
      )
      void thread.terminate()
    }, timeout)
    await exited
    clearTimeout(timer)
  }

  #settleFirstStart(): void {
    this.#firstStart?.resolve()
    this.#firstStart = undefined
  }

  #setState(state: WorkerInfo['state']): void {
    if (this.state === state) return
    this.state = state
    this.#components.onState(this)
  }

  #spawn(): void {
    const { node, logLevel, callTimeout, direct } = this.#components
    const init: ThreadInit = {
      file: this.spec.file,
      node,
      name: this.spec.name,
      key: this.spec.key,
      instance: this.spec.instance,
      logLevel,
      callTimeout,
      // Unique per thread, and bounded (keys may be long): a handshake refuses a peer claiming its own id.
      direct: direct && { ...direct, localId: `${direct.nodeId}/t.${randomBytes(6).toString('hex')}` },
    }
    this.#setState('starting')
    const thread = new Thread(THREAD_ENTRY, { workerData: init, stdout: true })
    const outbox = new PortBatch<ToThread>((batch) => thread.postMessage(batch))
    this.#thread = thread
    this.#outbox = outbox
    this.startedAt = Date.now()
    let exitReason: string | undefined
    thread.stdout.on('data', (chunk: Buffer) => this.#components.logSink.write(chunk))
    const respond = (reply: ToThread): void => {
      if (this.#thread === thread) outbox.push(reply)
    }
    const setExitReason = (reason: string): void => {
      exitReason = reason
    }
    thread.on('message', (batch: FromThread[]) => {
      for (const message of batch) this.#receive(thread, respond, message, setExitReason)
    })
    thread.on('error', (error: Error) => {
      exitReason = `threw: ${describe(error)}`
    })
    thread.on('exit', (code) => this.#onExit(thread, exitReason ?? `exited with code ${code}`))
  }

  /** Handles one message of the current thread. */
  #receive(
    thread: Thread,
    respond: (reply: ToThread) => void,
    message: FromThread,
    setExitReason: (reason: string) => void,
  ): void {
    const { logger } = this.#components
    switch (message.t) {
      case 'loaded':
        this.name = message.name
        this.methods = message.methods
        this.#methodSet = new Set(message.methods)
        respond({ t: 'create', args: this.spec.args ?? this.#components.argsFor(this) })
        break
      case 'load-failed': {
        const error = new WorkerLoadError(`cannot load worker ${this.spec.file}: ${message.error.message}`)
        setExitReason(error.message)
        this.#stopping = true
        this.#loadFailed = true
        if (this.#firstStart) this.#firstStart.reject(error)
        else logger.error({ worker: this.label }, error.message)
        this.#firstStart = undefined
        void thread.terminate()
        break
      }
      case 'ready':
        // A stop that overtook create(): the thread is on its way out; do not advertise it.
        if (!this.#stopping) {
          this.direct = message.direct ?? undefined
          this.#setState('running')
          logger.info({ worker: this.label, restarts: this.restarts }, 'worker running')
        }
        this.#settleFirstStart()
        break
      case 'result': {
        const pending = this.#pending.get(message.id)
        if (!pending) break
        this.#pending.delete(message.id)
        if (message.ok) pending.resolve(message.value)
        else pending.reject(rebuildError(message.error))
        break
      }
      case 'request':
        this.#components.onRequest(this, message.request, respond, message.id)
        break
      case 'cache-set':
        this.#components.onCache(this, message.key, message.value)
        break
      case 'cache-delete':
        this.#components.onCache(this, message.key, undefined)
        break
      case 'publish':
        this.#components.onPublish(this, message)
        break
      case 'unpublish':
        this.#components.onUnpublish(this, message.port)
        break
      case 'stopped':
        break
    }
  }

  #onExit(thread: Thread, reason: string): void {
    if (this.#thread !== thread) return
    this.#thread = undefined
    this.direct = undefined
    const uptime = Date.now() - (this.startedAt ?? Date.now())
    const pending = [...this.#pending.values()]
    this.#pending.clear()
    const error = new WorkerDownError(`${this.label} ended before answering (${reason})`)
    for (const call of pending) call.reject(error)
    if (this.#stopping) {
      if (this.#loadFailed) this.lastExit = reason
      this.#setState(this.#loadFailed ? 'failed' : 'stopped')
      // Stopped before its create() finished: whoever awaits start() learns it is stopped.
      this.#settleFirstStart()
      return
    }
    this.lastExit = reason
    const delay = this.#backoff.crashed(uptime)
    const fields = {
      worker: this.label,
      reason,
      restarts: this.restarts,
      nextRestartMs: delay,
      failedCalls: pending.length,
    }
    if (this.#backoff.looping) {
      this.#components.logger.error(
        fields,
        `worker crash loop: ${this.#backoff.consecutive} crashes in a row; restarting in ${delay} ms`,
      )
    } else {
      this.#components.logger.warn(fields, `worker crashed (${reason}); restarting in ${delay} ms`)
    }
    this.#setState('backoff')
    // The first start is settled by a crash too: the node is up, supervision carries on.
    this.#settleFirstStart()
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined
      if (this.#stopping) return
      this.restarts++
      this.#spawn()
    }, delay)
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message
  return String(error)
}

export type { SerializedError }
