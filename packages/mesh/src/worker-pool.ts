import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { InvalidArgumentError, NoSuchWorkerError, packValue, type WorkerInfo } from '@wmesh/core'
import type { Logger } from 'pino'
import * as v from 'valibot'
import type { NodeEntry, ServiceEntry, WorkerEntry } from './cluster-protocol.js'
import { ConfigError, type NodeConfig, type RestartPolicy, restartSchema } from './config.js'
import type { ToThread } from './thread-protocol.js'
import { type SlotComponents, type SlotSpec, WorkerSlot } from './worker-slot.js'

/** Which workers a node hosts. */
export interface WorkerPoolInit {
  /** Name of the node, for messages. */
  node: string
  workers: NodeConfig['workers']
  workersDir: string | undefined
}

/** What the pool asks of its node. */
export interface WorkerPoolComponents {
  /** The node's logger. */
  logger: Logger
  /** What every slot needs from the node beyond the pool's own bookkeeping. */
  slot: Omit<SlotComponents, 'direct' | 'onState' | 'argsFor' | 'onPublish' | 'onUnpublish'>
  /** The address to record for a server published on `bound`: never a wildcard. */
  serviceHost(bound: string): string
  /** The node's workers or services changed: its registry entry is out of date. */
  onChange(): void
}

const WORKER_FILE = /\.(m?js|c?js|m?ts|cts)$/

/**
 * The worker instances of one node: starts the configured ones and those of workersDir,
 * adds and removes keyed ones, files each under its worker name, and keeps the servers
 * they publish. The node routes calls over `slotsOf`.
 */
export class WorkerPool {
  readonly #init: WorkerPoolInit
  readonly #logger: Logger
  readonly #serviceHost: (bound: string) => string
  readonly #onChange: () => void
  readonly #slotComponents: SlotComponents
  readonly #slots = new Map<string, WorkerSlot[]>()
  #stopping = false
  /** Module file of each worker name, for `newWorker`. */
  readonly #files = new Map<string, string>()
  /** Servers published by this node's workers, by slot. */
  readonly #services = new Map<WorkerSlot, ServiceEntry[]>()

  constructor(init: WorkerPoolInit, components: WorkerPoolComponents) {
    this.#init = init
    this.#logger = components.logger
    this.#serviceHost = components.serviceHost
    this.#onChange = components.onChange
    this.#slotComponents = {
      ...components.slot,
      direct: undefined,
      onState: (slot) => this.#onSlotState(slot),
      argsFor: (slot) => packValue(this.#init.workers[slot.name]?.args),
      onPublish: (slot, service) => {
        const list = this.#services.get(slot) ?? []
        list.push({ ...service, worker: slot.name, key: slot.key, host: this.#serviceHost(service.host) })
        this.#services.set(slot, list)
        this.#onChange()
      },
      onUnpublish: (slot, port) => {
        const list = (this.#services.get(slot) ?? []).filter((s) => s.port !== port)
        if (list.length > 0) this.#services.set(slot, list)
        else this.#services.delete(slot)
        this.#onChange()
      },
    }
  }

  /** Direct-call settings for the threads started from now on. */
  enableDirectCalls(direct: NonNullable<SlotComponents['direct']>): void {
    this.#slotComponents.direct = direct
  }

  /**
   * Configured workers start one after another in the order they are listed (instances of
   * one worker in parallel), so a worker may rely on those above it, as with a supervisor's
   * children. Modules found in workersDir start afterwards, in parallel.
   */
  async start(): Promise<void> {
    for (const [name, options] of Object.entries(this.#init.workers)) {
      if (this.#stopping) return
      if (!options.file) continue
      this.#files.set(name, options.file)
      const starts: Array<Promise<void>> = []
      for (let i = 0; i < options.instances; i++) {
        starts.push(this.#addSlot({ file: options.file, name, key: undefined, instance: i, args: undefined }).start())
      }
      await Promise.all(starts)
    }
    const starts: Array<Promise<void>> = []
    const { workersDir } = this.#init
    if (workersDir !== undefined) {
      const entries = await readdir(workersDir).catch((error: NodeJS.ErrnoException) => {
        throw new ConfigError(`workersDir ${workersDir}: ${error.code ?? error.message}`)
      })
      for (const entry of entries.filter((e) => WORKER_FILE.test(e) && !e.endsWith('.d.ts')).sort()) {
        starts.push(this.#startFromDirectory(join(workersDir, entry)))
      }
    }
    await Promise.all(starts)
    if (this.#stopping) return
    for (const name of Object.keys(this.#init.workers)) {
      if (!this.#files.has(name)) {
        throw new ConfigError(
          `key "workers.${name}": no file given and no module in workersDir exports a worker named "${name}"`,
        )
      }
    }
  }

  /** Stops every instance, each within `timeout` ms. */
  async stop(timeout: number): Promise<void> {
    // A start still under way adds no more instances.
    this.#stopping = true
    await Promise.all(this.allSlots().map((slot) => slot.stop(timeout)))
  }

  /** True if this node has a module for the worker `name` (running or not). */
  hasModule(name: string): boolean {
    return this.#files.has(name)
  }

  /** Starts an instance of `name` with `key` on this node; `data` is its encoded `create` argument. */
  async newInstance(name: string, key: string, data: Uint8Array): Promise<WorkerInfo> {
    const file = this.#files.get(name)
    if (!file) throw new NoSuchWorkerError(`node ${this.#init.node} has no worker module named "${name}"`)
    if (this.slotsOf(name).some((s) => s.key === key)) {
      throw new InvalidArgumentError(`${name} already has an instance with key "${key}" on node ${this.#init.node}`)
    }
    const slot = this.#addSlot({ file, name, key, instance: undefined, args: data })
    await slot.start()
    return slot.info()
  }

  /** True while `slot` is one of this pool's instances (not removed). */
  has(slot: WorkerSlot): boolean {
    // Searched everywhere: a directory slot stays filed under its path until it runs.
    for (const list of this.#slots.values()) if (list.includes(slot)) return true
    return false
  }

  /** Forgets an instance and the servers it published (stopping it is the caller's). */
  remove(slot: WorkerSlot): void {
    for (const [name, list] of this.#slots) {
      const at = list.indexOf(slot)
      if (at >= 0) {
        list.splice(at, 1)
        if (list.length === 0) this.#slots.delete(name)
      }
    }
    this.#services.delete(slot)
    this.#onChange()
  }

  slotsOf(name: string): WorkerSlot[] {
    return this.#slots.get(name) ?? []
  }

  allSlots(): WorkerSlot[] {
    return [...this.#slots.values()].flat()
  }

  /** The workers and services of this node's registry entry; a stopping node publishes no service. */
  describe(stopping: boolean): Pick<NodeEntry, 'workers' | 'services'> {
    const workers: WorkerEntry[] = this.allSlots().map((slot) => {
      const info = slot.info()
      return {
        name: info.name,
        key: info.key,
        instance: info.instance,
        state: stopping && info.state === 'running' ? 'stopping' : info.state,
        restarts: info.restarts,
        lastExit: info.lastExit,
        startedAt: info.startedAt,
        methods: info.methods,
        direct: slot.direct,
      }
    })
    return { workers, services: stopping ? [] : [...this.#services.values()].flat() }
  }

  /** Sends every instance's thread the node's view, for routing direct calls. */
  sendDirectory(message: Extract<ToThread, { t: 'directory' }>): void {
    for (const slot of this.allSlots()) slot.sendDirectory(message)
  }

  /** A module from workersDir: its name is known once loaded; then its configured instance count applies. */
  async #startFromDirectory(file: string): Promise<void> {
    if (this.#stopping) return
    const first = this.#addSlot({ file, name: undefined, key: undefined, instance: 0, args: undefined })
    await first.start()
    if (this.#stopping) return
    const name = first.name
    const known = this.#files.get(name)
    if (known !== undefined && known !== file) {
      this.#logger.warn(
        { file, worker: name },
        `${file} defines worker "${name}", already loaded from ${known}; ignoring it`,
      )
      this.remove(first)
      await first.stop(2000)
      return
    }
    this.#files.set(name, file)
    // Its name was unknown when the first slot was made: so was its configured policy.
    first.useRestartPolicy(this.#restartPolicy(name))
    const instances = this.#init.workers[name]?.instances ?? 1
    if (instances === 0) {
      this.remove(first)
      await first.stop(2000)
      return
    }
    const more: Array<Promise<void>> = []
    for (let i = 1; i < instances; i++) {
      more.push(this.#addSlot({ file, name, key: undefined, instance: i, args: undefined }).start())
    }
    await Promise.all(more)
  }

  /** The restart policy configured for worker `name` (defaults where none is). */
  #restartPolicy(name: string | undefined): RestartPolicy {
    return v.parse(restartSchema, name ? (this.#init.workers[name]?.restart ?? {}) : {})
  }

  #addSlot(spec: Omit<SlotSpec, 'restart'>): WorkerSlot {
    const slot = new WorkerSlot({ ...spec, restart: this.#restartPolicy(spec.name) }, this.#slotComponents)
    // Until its module reports a name, a directory slot is filed under its path.
    const list = this.#slots.get(slot.name) ?? []
    list.push(slot)
    this.#slots.set(slot.name, list)
    // Listed from now on: a worker still in create() shows as starting.
    this.#onChange()
    return slot
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
    // A worker that is not running publishes nothing.
    if (slot.state !== 'running') this.#services.delete(slot)
    this.#onChange()
  }
}
