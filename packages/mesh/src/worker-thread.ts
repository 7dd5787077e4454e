/**
 * Entry point of every worker thread: loads the user's worker module, reports its name
 * and methods, runs `create(args)` when told, then serves calls until told to stop.
 * User code runs only here, never in the node's main thread.
 */
import { createRequire, register } from 'node:module'
import { pathToFileURL } from 'node:url'
import { type MessagePort, parentPort, workerData } from 'node:worker_threads'
import { NoSuchMethodError, packValue, startWorker, Worker, type WorkerClass, type WorkerHandle } from '@wmesh/core'
import { pino } from 'pino'
import { BurstLog } from './burst-log.js'
import { DirectCaller } from './direct-caller.js'
import { directIdentity, instanceLabel } from './direct-protocol.js'
import { DirectRouter } from './direct-router.js'
import { DirectServer } from './direct-server.js'
import { PortBatch } from './port-batch.js'
import { serializeError } from './remote-error.js'
import { ThreadMesh } from './thread-mesh.js'
import type { FromThread, ThreadInit, ToThread } from './thread-protocol.js'
import { unpackTop } from './values.js'
import { publicMethods } from './worker-methods.js'

if (!parentPort) throw new Error('worker-thread.js runs only as a worker thread of a wmesh node')
const port: MessagePort = parentPort
const init = workerData as ThreadInit
const outbox = new PortBatch<FromThread>((batch) => port.postMessage(batch))
const post = (message: FromThread): void => outbox.push(message)

/** Finds the Worker class a module exports: its default export, else its first Worker export. */
function findWorkerClass(module: Record<string, unknown>): WorkerClass | undefined {
  const isWorker = (v: unknown): v is WorkerClass => typeof v === 'function' && v.prototype instanceof Worker
  if (isWorker(module.default)) return module.default
  return Object.values(module).find(isWorker)
}

/** Where `specifier` resolves to when imported from the worker's own file, or undefined. */
function resolvesFromFile(specifier: string): string | undefined {
  try {
    return pathToFileURL(createRequire(init.file).resolve(specifier)).href
  } catch {
    return undefined
  }
}

async function load(): Promise<WorkerClass | undefined> {
  if (/\.[cm]?ts$/.test(init.file)) {
    // TypeScript worker files run without a build step; tsx must hook in before our own
    // resolver so that ours, registered last, runs first.
    const tsx = await import('tsx/esm/api')
    tsx.register()
  }
  // Worker modules import '@wmesh/core' from wherever they live (a `wmesh init` directory
  // has no node_modules): map it to the node's own copy, which also keeps `instanceof Worker`
  // and the runtime's symbols shared with this thread. Hooks run on a thread of their own
  // (about 10 MB each in Node 20), so only where the module would not find that copy itself.
  const mapping = {
    '@wmesh/core': import.meta.resolve('@wmesh/core'),
    '@wmesh/core/internal': import.meta.resolve('@wmesh/core/internal'),
    '@wmesh/mesh': new URL('./index.js', import.meta.url).href,
  }
  if (!Object.entries(mapping).every(([specifier, url]) => resolvesFromFile(specifier) === url)) {
    register(new URL('./core-resolve-hooks.js', import.meta.url), { data: mapping })
  }
  let module: Record<string, unknown>
  try {
    module = (await import(pathToFileURL(init.file).href)) as Record<string, unknown>
  } catch (error) {
    post({ t: 'load-failed', error: serializeError(error, false) })
    return undefined
  }
  const WorkerClass = findWorkerClass(module)
  if (!WorkerClass) {
    post({
      t: 'load-failed',
      error: serializeError(
        new Error(`${init.file} exports no Worker class (export default class X extends Worker)`),
        false,
      ),
    })
    return undefined
  }
  return WorkerClass
}

async function main(): Promise<void> {
  const WorkerClass = await load()
  if (!WorkerClass) return
  const name = init.name ?? WorkerClass.workerName ?? WorkerClass.name
  const methods = publicMethods(WorkerClass)
  const methodSet = new Set(methods)
  // startWorker adds { worker: name } to every line.
  // Lines go to this thread's stdout, which the node forwards to its own sink (pretty on a terminal).
  const logger = pino(
    { level: init.logLevel, base: { node: init.node, key: init.key, instance: init.instance } },
    process.stdout,
  )
  const router = init.direct ? new DirectRouter(new DirectCaller(init.direct, { logger })) : undefined
  const mesh = new ThreadMesh(post, init.callTimeout, router)
  let handle: WorkerHandle | undefined
  let direct: DirectServer | undefined

  const hasMethod = (method: string): boolean => handle !== undefined && methodSet.has(method)
  /** Runs a public method: its value or promise; what it throws is what the caller gets. */
  const invoke = (method: string, arg: unknown): unknown => {
    const worker = handle?.worker as unknown as Record<string, (arg: unknown) => unknown>
    return (worker[method] as (arg: unknown) => unknown).call(worker, arg)
  }
  // Nobody waits for a cast, so its failure is a log line; a method that throws on every
  // cast of a flood must not turn into a line per cast.
  const castFailures = new BurstLog(
    logger,
    (method, n, last, seconds) => `cast ${method} threw ${n} more times in ${seconds} s (last: ${last})`,
    (method, n) => ({ method, failed: n }),
  )
  const castFailed = (method: string, error: unknown): void => {
    // Method names come from the wire: unknown ones share one window, or each would get its own.
    const key = hasMethod(method) ? method : '(no such method)'
    castFailures.warn(key, { err: error, method }, `cast ${method} threw: ${(error as Error)?.message}`)
  }

  const serve = async (id: number, method: string, arg: Uint8Array, cast: boolean): Promise<void> => {
    if (!hasMethod(method)) {
      const error = new NoSuchMethodError(`${name} has no public method "${method}"`)
      if (!cast) post({ t: 'result', id, ok: false, error: serializeError(error, false) })
      return
    }
    try {
      const value = await invoke(method, unpackTop(arg))
      if (!cast) post({ t: 'result', id, ok: true, value: packValue(value) })
    } catch (error) {
      if (cast) castFailed(method, error)
      else post({ t: 'result', id, ok: false, error: serializeError(error, true) })
    }
  }

  /** Opens this instance's port for direct calls; without one, calls reach it through its node. */
  const listenDirect = async (): Promise<number | undefined> => {
    if (!init.direct) return undefined
    try {
      const identity = directIdentity(init.direct.nodeId, instanceLabel(name, init.key, init.instance))
      direct = await DirectServer.listen(init.direct, identity, { logger, hasMethod, invoke, castFailed })
      return direct.port
    } catch (error) {
      logger.warn({ err: error }, `no direct calls to this worker: ${(error as Error).message}`)
      return undefined
    }
  }

  const onMessage = (message: ToThread): void => {
    switch (message.t) {
      case 'create':
        startWorker(WorkerClass, unpackTop(message.args), {
          logger,
          mesh,
          cache: mesh.cache(),
          onPublish: (server, codec) =>
            post({ t: 'publish', name: server.publish as string, host: server.host, port: server.port, codec }),
          onUnpublish: (server) => post({ t: 'unpublish', port: server.port }),
          // A worker timer that throws is a crash of this worker: end the thread so the node restarts it.
          onError: (error) =>
            setImmediate(() => {
              throw error
            }),
        }).then(async (h) => {
          handle = h
          post({ t: 'ready', direct: await listenDirect() })
        })
        // A create() that throws rejects here; rethrowing ends the thread as a crash with that error.
        break
      case 'call':
        void serve(message.id, message.method, message.arg, message.cast)
        break
      case 'reply':
        mesh.onReply(message.id, message.ok ? { ok: true, value: message.value } : { ok: false, error: message.error })
        break
      case 'directory':
        router?.update(message.self, message.nodes)
        break
      case 'stop':
        // Direct callers are told to go through the nodes; their calls in flight finish first.
        void (direct?.drain(message.timeout / 2) ?? Promise.resolve())
          .then(() => handle?.stop())
          .finally(() => {
            router?.caller.close()
            post({ t: 'stopped' })
            // Whatever the user left running (a stray interval) must not keep the thread alive.
            setImmediate(() => process.exit(0))
          })
        break
    }
  }
  port.on('message', (batch: ToThread[]) => {
    for (const message of batch) onMessage(message)
  })
  post({ t: 'loaded', name, methods })
}

await main()
