import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { readdir } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import {
  type CallOptions,
  InvalidArgumentError,
  type Mesh,
  type NewWorkerOptions,
  NodeStoppingError,
  NoSuchMethodError,
  NoSuchWorkerError,
  packValue,
  TimeoutError,
  unpackFrame,
  type WaitOptions,
  type WorkerInfo,
  type WorkerRef,
  type WorkerSelector,
} from '@wmesh/core'
import type { Logger } from 'pino'
import { ConfigError, type NodeConfig, type NodeConfigInput, parseNodeConfig, restartSchema } from './config.js'
import { createNodeLogger, logSinkOf } from './logger.js'
import { serializeError } from './remote-error.js'
import { ResultStore } from './result-cache.js'
import { Scheduler } from './scheduler.js'
import type { ThreadRequest, ToThread } from './thread-protocol.js'
import { unpackTop } from './values.js'
import { type SlotComponents, WorkerLoadError, WorkerSlot } from './worker-slot.js'

/** Injected dependencies of a node. */
export interface MeshNodeComponents {
  /** Root logger (default: `createNodeLogger` at the configured level). */
  logger?: Logger
}

/** Events a node emits. */
export interface MeshNodeEvents {
  'worker:up': [WorkerInfo]
  'worker:down': [WorkerInfo]
}

const WORKER_FILE = /\.(m?js|c?js|m?ts|cts)$/
const NIL = packValue(undefined)
const FIXARRAY_0 = Uint8Array.of(0x90)
const FIXARRAY_1 = Uint8Array.of(0x91)

/**
 * A wmesh node: hosts workers, each instance in a worker thread of its own, supervised
 * and restarted with backoff; routes calls between them; keeps their result caches; runs
 * schedules. The main thread runs no user code.
 *
 * It is also the `Mesh` for the program that owns it: `node.worker('foo').call(...)`.
 */
export class MeshNode extends EventEmitter<MeshNodeEvents> implements Mesh {
  readonly config: NodeConfig
  /** The configured (or host) name. */
  readonly name: string
  /** Random per start: tells this run of the node from earlier ones. */
  readonly incarnation: string
  /** `name:incarnation`. */
  readonly id: string
  readonly logger: Logger
  readonly #slots = new Map<string, WorkerSlot[]>()
  /** Module file of each worker name, for `newWorker`. */
  readonly #files = new Map<string, string>()
  readonly #results = new ResultStore()
  readonly #roundRobin = new Map<string, number>()
  readonly #components: SlotComponents
  #scheduler: Scheduler | undefined
  #nextCallId = 1
  #inFlight = 0
  #idleWaiters: Array<() => void> = []
  #state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new'
  #stopped: Promise<void> | undefined

  constructor(config: NodeConfigInput | NodeConfig, components: MeshNodeComponents = {}) {
    super()
    this.config = parseNodeConfig(config)
    this.name = this.config.name ?? sanitizeHostname(hostname())
    this.incarnation = randomBytes(6).toString('hex')
    this.id = `${this.name}:${this.incarnation}`
    const root = components.logger ?? createNodeLogger({ level: this.config.logLevel })
    this.logger = root.child({ node: this.name })
    this.#components = {
      logger: this.logger.child({ component: 'mesh:supervisor' }),
      node: this.name,
      logLevel: this.config.logLevel,
      callTimeout: this.config.callTimeout,
      logSink: logSinkOf(root),
      onRequest: (slot, request, respond, id) => this.#onThreadRequest(slot, request, respond, id),
      onCache: (slot, key, value) => {
        if (value) this.#results.set(slot.name, slot.key, key, value)
        else this.#results.delete(slot.name, slot.key, key)
      },
      onState: (slot) => this.#onSlotState(slot),
      argsFor: (slot) => packValue(this.config.workers[slot.name]?.args),
    }
  }

  /**
   * Loads every configured worker and starts its instances. Resolves when each has run
   * `create` (or crashed in it and is under supervision). Rejects with `ConfigError` if a
   * module cannot be loaded or exports no Worker; then nothing is left running.
   */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new Error(`node ${this.name} was already started`)
    this.#state = 'starting'
    try {
      await this.#startWorkers()
      this.#scheduler = new Scheduler(this.config.schedules, (s) => this.#runSchedule(s), this.logger)
      this.#scheduler.start()
    } catch (error) {
      await this.#stopSlots(2000)
      this.#state = 'stopped'
      if (error instanceof WorkerLoadError) throw new ConfigError(error.message)
      throw error
    }
    this.#state = 'running'
    this.logger.info({ id: this.id, workers: this.#allSlots().length }, `node ${this.name} running`)
  }

  /**
   * Graceful stop: takes no new calls, lets calls in flight finish, then stops every worker
   * (its `onStop` runs, its connections close), all within `shutdownTimeout`. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop()
    return this.#stopped
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop()
  }

  /** Per-schedule counters (runs, skipped, failed), in config order. */
  scheduleStats(): Array<{ runs: number; skipped: number; failed: number }> {
    return this.#scheduler?.stats.map((s) => ({ ...s })) ?? []
  }

  worker(name: string, selector: WorkerSelector = {}): WorkerRef {
    const node = this
    return {
      async call<T>(method: string, arg?: unknown, options: CallOptions = {}): Promise<T> {
        const bytes = await node.#call(name, selector, method, packValue(arg), options.timeout, options.signal)
        return unpackTop(bytes) as T
      },
      async cast(method: string, arg?: unknown): Promise<void> {
        node.#cast(name, selector, method, packValue(arg))
      },
      async askResult<T>(key: string): Promise<T | undefined> {
        return (unpackFrame(node.#askResult(name, selector, key)) as [T] | [])[0]
      },
      async delete(): Promise<void> {
        await node.#delete(name, selector)
      },
      async info(): Promise<WorkerInfo[]> {
        return node.#select(name, selector).map((s) => s.info())
      },
    }
  }

  async newWorker(name: string, options: NewWorkerOptions): Promise<WorkerInfo> {
    this.#checkAccepting()
    const file = this.#files.get(name)
    if (!file) throw new NoSuchWorkerError(`node ${this.name} has no worker module named "${name}"`)
    if (typeof options.key !== 'string' || options.key.length === 0) {
      throw new InvalidArgumentError(`newWorker(${name}) needs a non-empty string key`)
    }
    if (this.#slotsOf(name).some((s) => s.key === options.key)) {
      throw new InvalidArgumentError(`${name} already has an instance with key "${options.key}"`)
    }
    const slot = this.#addSlot({ file, name, key: options.key, instance: undefined, args: packValue(options.data) })
    await slot.start()
    return slot.info()
  }

  async workers(_options?: WaitOptions): Promise<WorkerInfo[]> {
    return this.#allSlots().map((s) => s.info())
  }

  /**
   * Configured workers start one after another in the order they are listed (instances of
   * one worker in parallel), so a worker may rely on those above it, as with a supervisor's
   * children. Modules found in workersDir start afterwards, in parallel.
   */
  async #startWorkers(): Promise<void> {
    for (const [name, options] of Object.entries(this.config.workers)) {
      if (!options.file) continue
      this.#files.set(name, options.file)
      const starts: Array<Promise<void>> = []
      for (let i = 0; i < options.instances; i++) {
        starts.push(this.#addSlot({ file: options.file, name, key: undefined, instance: i, args: undefined }).start())
      }
      await Promise.all(starts)
    }
    const starts: Array<Promise<void>> = []
    if (this.config.workersDir !== undefined) {
      const entries = await readdir(this.config.workersDir).catch((error: NodeJS.ErrnoException) => {
        throw new ConfigError(`workersDir ${this.config.workersDir}: ${error.code ?? error.message}`)
      })
      for (const entry of entries.filter((e) => WORKER_FILE.test(e) && !e.endsWith('.d.ts')).sort()) {
        starts.push(this.#startFromDirectory(join(this.config.workersDir, entry)))
      }
    }
    await Promise.all(starts)
    for (const name of Object.keys(this.config.workers)) {
      if (!this.#files.has(name)) {
        throw new ConfigError(
          `key "workers.${name}": no file given and no module in workersDir exports a worker named "${name}"`,
        )
      }
    }
  }

  /** A module from workersDir: its name is known once loaded; then its configured instance count applies. */
  async #startFromDirectory(file: string): Promise<void> {
    const first = this.#addSlot({ file, name: undefined, key: undefined, instance: 0, args: undefined })
    await first.start()
    const name = first.name
    if (this.#files.has(name) && this.#files.get(name) !== file) {
      this.logger.warn(
        { file, worker: name },
        `${file} defines worker "${name}", which the config already maps to ${this.#files.get(name)}; ignoring it`,
      )
      this.#removeSlot(first)
      await first.stop(2000)
      return
    }
    this.#files.set(name, file)
    const instances = this.config.workers[name]?.instances ?? 1
    if (instances === 0) {
      this.#removeSlot(first)
      await first.stop(2000)
      return
    }
    const more: Array<Promise<void>> = []
    for (let i = 1; i < instances; i++) {
      more.push(this.#addSlot({ file, name, key: undefined, instance: i, args: undefined }).start())
    }
    await Promise.all(more)
  }

  #addSlot(spec: {
    file: string
    name: string | undefined
    key: string | undefined
    instance: number | undefined
    args: Uint8Array | undefined
  }): WorkerSlot {
    const restart = restartSchema.parse(spec.name ? (this.config.workers[spec.name]?.restart ?? {}) : {})
    const slot = new WorkerSlot({ ...spec, restart }, this.#components)
    // Until its module reports a name, a directory slot is filed under its path.
    const list = this.#slots.get(slot.name) ?? []
    list.push(slot)
    this.#slots.set(slot.name, list)
    return slot
  }

  #removeSlot(slot: WorkerSlot): void {
    for (const [name, list] of this.#slots) {
      const at = list.indexOf(slot)
      if (at >= 0) {
        list.splice(at, 1)
        if (list.length === 0) this.#slots.delete(name)
      }
    }
  }

  #onSlotState(slot: WorkerSlot): void {
    // A directory slot learns its name on load: refile it.
    for (const [name, list] of this.#slots) {
      if (name !== slot.name && list.includes(slot)) {
        list.splice(list.indexOf(slot), 1)
        if (list.length === 0) this.#slots.delete(name)
        const target = this.#slots.get(slot.name) ?? []
        target.push(slot)
        this.#slots.set(slot.name, target)
      }
    }
    if (slot.state === 'running') this.emit('worker:up', slot.info())
    else if (slot.state === 'backoff' || slot.state === 'stopped' || slot.state === 'failed') {
      this.emit('worker:down', slot.info())
    }
  }

  #slotsOf(name: string): WorkerSlot[] {
    return this.#slots.get(name) ?? []
  }

  #allSlots(): WorkerSlot[] {
    return [...this.#slots.values()].flat()
  }

  #select(name: string, selector: WorkerSelector): WorkerSlot[] {
    const slots = this.#slotsOf(name)
    return selector.key !== undefined ? slots.filter((s) => s.key === selector.key) : slots
  }

  #checkAccepting(): void {
    if (this.#state === 'stopping' || this.#state === 'stopped') {
      throw new NodeStoppingError(`node ${this.name} is shutting down and takes no new calls`)
    }
  }

  /** Picks a running instance: the keyed one, or round-robin over the unkeyed ones. */
  #route(name: string, selector: WorkerSelector, method: string): WorkerSlot {
    this.#checkAccepting()
    if (selector.node !== undefined && selector.node !== this.name && selector.node !== this.id) {
      throw new NoSuchWorkerError(`no node "${selector.node}" is known to ${this.name}`)
    }
    const slots = this.#slotsOf(name)
    if (slots.length === 0) throw new NoSuchWorkerError(`no worker named "${name}" on node ${this.name}`)
    const candidates =
      selector.key !== undefined
        ? slots.filter((s) => s.key === selector.key)
        : slots.filter((s) => s.key === undefined)
    const running = candidates.filter((s) => s.running)
    if (running.length === 0) {
      const what = selector.key !== undefined ? `${name} with key "${selector.key}"` : `${name} (unkeyed)`
      const why =
        candidates.length === 0
          ? 'no such instance'
          : `instances are ${[...new Set(candidates.map((s) => s.state))].join('/')}`
      throw new NoSuchWorkerError(`no running instance of ${what} on node ${this.name}: ${why}`)
    }
    const turn = this.#roundRobin.get(name) ?? 0
    this.#roundRobin.set(name, turn + 1)
    const slot = running[turn % running.length] as WorkerSlot
    if (!slot.hasMethod(method)) throw new NoSuchMethodError(`${name} has no public method "${method}"`)
    return slot
  }

  #call(
    name: string,
    selector: WorkerSelector,
    method: string,
    arg: Uint8Array,
    timeout?: number,
    signal?: AbortSignal,
  ): Promise<Uint8Array> {
    let slot: WorkerSlot
    try {
      slot = this.#route(name, selector, method)
    } catch (error) {
      return Promise.reject(error)
    }
    const limit = timeout ?? this.config.callTimeout
    const id = this.#nextCallId++
    this.#inFlight++
    return new Promise<Uint8Array>((resolve, reject) => {
      let settled = false
      const finish = (): boolean => {
        if (settled) return false
        settled = true
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        if (--this.#inFlight === 0) for (const wake of this.#idleWaiters.splice(0)) wake()
        return true
      }
      const timer = setTimeout(() => {
        slot.forget(id)
        if (finish()) reject(new TimeoutError(`call ${name}.${method} timed out after ${limit} ms`))
      }, limit)
      const onAbort = (): void => {
        slot.forget(id)
        if (finish()) reject(new TimeoutError(`call ${name}.${method} was aborted`))
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      slot.dispatch(id, method, arg, false, {
        resolve: (value) => finish() && resolve(value),
        reject: (error) => finish() && reject(error),
      })
    })
  }

  #cast(name: string, selector: WorkerSelector, method: string, arg: Uint8Array): void {
    const slot = this.#route(name, selector, method)
    slot.dispatch(this.#nextCallId++, method, arg, true, undefined)
  }

  /** The stored value as a one-element MessagePack array, or an empty array: a stored nil stays nil. */
  #askResult(name: string, selector: WorkerSelector, key: string): Uint8Array {
    if (this.#slotsOf(name).length === 0 && !this.#files.has(name)) {
      throw new NoSuchWorkerError(`no worker named "${name}" on node ${this.name}`)
    }
    const value = this.#results.get(name, selector.key, key)
    return value ? Buffer.concat([FIXARRAY_1, value]) : FIXARRAY_0
  }

  async #delete(name: string, selector: WorkerSelector): Promise<void> {
    const slots = this.#select(name, selector)
    if (slots.length === 0) {
      const what = selector.key !== undefined ? `${name} with key "${selector.key}"` : name
      throw new NoSuchWorkerError(`no instance of ${what} on node ${this.name}`)
    }
    for (const slot of slots) this.#removeSlot(slot)
    await Promise.all(slots.map((s) => s.stop(this.config.shutdownTimeout)))
    for (const slot of slots) this.#results.drop(slot.name, slot.key)
  }

  async #runSchedule(schedule: NodeConfig['schedules'][number]): Promise<void> {
    await this.#call(
      schedule.worker,
      { key: schedule.key },
      schedule.method,
      packValue(schedule.data),
      schedule.timeout ?? this.config.callTimeout,
    )
  }

  /** Serves what a worker thread asks of the mesh, replying to that same thread. */
  #onThreadRequest(_slot: WorkerSlot, request: ThreadRequest, respond: (reply: ToThread) => void, id: number): void {
    const ok = (value: Uint8Array): void => respond({ t: 'reply', id, ok: true, value })
    const fail = (error: unknown): void => respond({ t: 'reply', id, ok: false, error: serializeError(error, false) })
    const run = async (): Promise<Uint8Array> => {
      switch (request.op) {
        case 'call':
          return this.#call(request.target, request.selector, request.method, request.arg, request.timeout)
        case 'cast':
          this.#cast(request.target, request.selector, request.method, request.arg)
          return NIL
        case 'askResult':
          return this.#askResult(request.target, request.selector, request.key)
        case 'newWorker':
          return packValue(
            await this.newWorker(request.target, {
              key: request.key,
              data: unpackTop(request.data),
              node: request.node,
            }),
          )
        case 'delete':
          await this.#delete(request.target, request.selector)
          return NIL
        case 'info':
          return packValue(
            request.target === undefined
              ? this.#allSlots().map((s) => s.info())
              : this.#select(request.target, request.selector).map((s) => s.info()),
          )
      }
    }
    run().then(ok, fail)
  }

  async #stop(): Promise<void> {
    if (this.#state === 'new') {
      this.#state = 'stopped'
      return
    }
    this.#state = 'stopping'
    const deadline = Date.now() + this.config.shutdownTimeout
    this.#scheduler?.stop()
    if (this.#inFlight > 0) {
      this.logger.info({ inFlight: this.#inFlight }, `stopping: waiting for ${this.#inFlight} calls in flight`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()))
        this.#idleWaiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
    await this.#stopSlots(Math.max(1000, deadline - Date.now()))
    this.#state = 'stopped'
    this.logger.info(`node ${this.name} stopped`)
  }

  async #stopSlots(timeout: number): Promise<void> {
    await Promise.all(this.#allSlots().map((slot) => slot.stop(timeout)))
  }
}

/** Host names may carry dots and odd characters; node names allow letters, digits, _ . - */
function sanitizeHostname(name: string): string {
  const clean = name.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[^A-Za-z0-9]+/, '')
  return (clean || 'node').slice(0, 63)
}
