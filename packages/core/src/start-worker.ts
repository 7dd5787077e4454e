import type { Logger } from 'pino'
import { waitWithDeadline } from './deadline.js'
import { createDefaultLogger } from './logger.js'
import type { Mesh, ResultCache } from './mesh-api.js'
import { WorkerRuntime } from './runtime.js'
import type { ServerHandle } from './server.js'
import { kRuntime } from './symbols.js'
import { type Worker, type WorkerClass, workerNameOf } from './worker.js'

/** Options of `startWorker`. */
export interface StartWorkerOptions {
  /** Parent logger; the worker gets a child with `{ worker: name }`. */
  logger?: Logger
  /**
   * Called when worker-level code fails outside any connection (a timer callback that
   * throws). Default: log it. A node uses this to crash and restart the worker thread.
   */
  onError?: (error: unknown) => void
  /** Milliseconds `stop()` gives `onStop` and open connections before forcing them closed (default 10 s). */
  stopTimeout?: number
  /** The cluster API behind `this.mesh`, when the worker runs in a node. */
  mesh?: Mesh
  /** The store behind `this.cache`, when the worker runs in a node. */
  cache?: ResultCache
  /** Told when a server started with `publish` listens (with its codec name) and when it closes. */
  onPublish?: (server: ServerHandle, codec: string) => void
  onUnpublish?: (server: ServerHandle) => void
}

/** A running worker. */
export interface WorkerHandle<W extends Worker = Worker> {
  readonly worker: W
  readonly name: string
  /**
   * Stops the worker: runs `onStop`, stops its servers, lets its connections write what
   * they have queued, cancels its timers. Connections still open after `stopTimeout` are
   * destroyed. Idempotent.
   */
  stop(): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
}

const DEFAULT_STOP_TIMEOUT = 10_000

/**
 * Runs one worker in the current thread: instantiates it, then awaits `create(args)`.
 * If `create` throws, everything the worker opened is closed and the error is rethrown.
 */
export async function startWorker<W extends Worker>(
  WorkerClass: WorkerClass<W>,
  args?: unknown,
  options: StartWorkerOptions = {},
): Promise<WorkerHandle<W>> {
  const name = workerNameOf(WorkerClass)
  const logger = (options.logger ?? createDefaultLogger()).child({ worker: name })
  const onError =
    options.onError ??
    ((error: unknown) =>
      logger.error({ err: error }, `worker callback threw: ${error instanceof Error ? error.message : String(error)}`))
  const runtime = new WorkerRuntime(logger, onError)
  runtime.mesh = options.mesh
  runtime.cache = options.cache
  runtime.onPublish = options.onPublish
  runtime.onUnpublish = options.onUnpublish
  const worker = new WorkerClass()
  worker[kRuntime] = runtime
  const stopTimeout = options.stopTimeout ?? DEFAULT_STOP_TIMEOUT
  let stopping: Promise<void> | undefined
  const stop = (): Promise<void> => {
    stopping ??= stopRuntime(worker, runtime, stopTimeout)
    return stopping
  }
  try {
    await worker.create(args)
  } catch (error) {
    await stop()
    throw error
  }
  return { worker, name, stop, [Symbol.asyncDispose]: stop }
}

async function stopRuntime(worker: Worker, runtime: WorkerRuntime, timeout: number): Promise<void> {
  const deadline = Date.now() + timeout
  try {
    await withTimeout(
      Promise.resolve().then(() => worker.onStop()),
      timeout,
    )
  } catch (error) {
    runtime.logger.error({ err: error }, `onStop failed: ${error instanceof Error ? error.message : String(error)}`)
  }
  runtime.stopped = true
  runtime.timers.close()
  const remaining = Math.max(0, deadline - Date.now())
  const servers = [...runtime.servers].map((server) => server.close({ timeout: remaining }))
  const connections = [...runtime.connections]
  const closed = connections.map(
    (c) => new Promise<void>((resolve) => (c.state === 'closed' ? resolve() : c.socket.once('close', () => resolve()))),
  )
  for (const connection of connections) connection.end()
  try {
    await withTimeout(Promise.all([...servers, ...closed]), remaining)
  } catch {
    for (const connection of [...runtime.connections]) connection.fail(undefined)
    for (const server of [...runtime.servers]) server.destroy()
    await Promise.all(closed)
  }
}

/** Waits for `promise` at most `ms` milliseconds (rejecting with `TimeoutError` after that). */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return waitWithDeadline<T>('worker stop', { timeout: ms }, (resolve, reject) => {
    promise.then(resolve, reject)
    return () => {}
  })
}
