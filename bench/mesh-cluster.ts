/**
 * Two real wmesh nodes on loopback, each a `wmesh start` process: node `a` runs the driver
 * worker (bench/fixtures/driver-worker.mjs), node `b` the sink (bench/fixtures/sink-worker.mjs).
 * A client from this process (`connectMesh`) only tells the workers what to do and reads
 * their figures; the measured traffic runs between the two worker threads.
 */
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { WorkerInfo } from '@wmesh/core'
import { connectMesh, type MeshClient } from '@wmesh/mesh'
import type { ClosedLoopInit, RoundTrips } from './fixtures/closed-loop.mjs'
import { NODE_ARGS } from './knobs.js'
import type { OneWay } from './meter.js'
import { SecretDir, wmeshBin } from './node-files.js'
import { type Children, freePorts } from './processes.js'

const driverFile = fileURLToPath(new URL('./fixtures/driver-worker.mjs', import.meta.url))
const sinkFile = fileURLToPath(new URL('./fixtures/sink-worker.mjs', import.meta.url))
const SERVICE = 'bench-sink'
/** Slack on top of a measurement's own length before a control call gives up. */
const CONTROL_TIMEOUT_MS = 30_000

export class MeshCluster {
  readonly #children: Children
  readonly #dir = new SecretDir()
  readonly #nodes: ChildProcess[] = []
  #client: MeshClient | undefined

  constructor(children: Children) {
    this.#children = children
  }

  /** Starts both nodes; resolves when the driver on `a` sees the sink and its service on `b`. */
  async start(): Promise<void> {
    const ports = await freePorts(2)
    const join = ports.map((p) => `127.0.0.1:${p}`)
    const nodes = [
      { name: 'a', workers: { driver: { file: driverFile } } },
      { name: 'b', workers: { sink: { file: sinkFile, args: { service: SERVICE } } } },
    ]
    nodes.forEach(({ name, workers }, i) => {
      const config = this.#dir.writeConfig(name, { listen: join[i], join, logLevel: 'warn', workers })
      this.#nodes.push(this.#children.spawn(process.execPath, [...NODE_ARGS, wmeshBin, 'start', '--config', config]))
    })
    const client = await connectMesh({ secretFile: this.#dir.secretFile, join, mdns: false })
    this.#client = client
    await whenRunning(client, 'driver', 'a')
    await client
      .worker('driver', { node: 'a' })
      .call('waitFor', { worker: 'sink', node: 'b', service: SERVICE }, { timeout: CONTROL_TIMEOUT_MS })
  }

  #mesh(): MeshClient {
    if (!this.#client) throw new Error('MeshCluster is not started')
    return this.#client
  }

  /** Calls from the driver on `a` to the sink on `b` at `inflight`. */
  calls(load: ClosedLoopInit): Promise<RoundTrips> {
    return this.#mesh()
      .worker('driver', { node: 'a' })
      .call<RoundTrips>(
        'calls',
        { ...load, target: 'sink', node: 'b', size: 16 },
        { timeout: load.warmupMs + load.windowMs + CONTROL_TIMEOUT_MS },
      )
  }

  /** Casts of `size`-byte arguments from the driver on `a` to the sink on `b`, as the sink counts them. */
  cast(size: number, warmupMs: number, windowMs: number): Promise<OneWay> {
    return this.#oneWay('castLoad', { target: 'sink', node: 'b', size }, warmupMs, windowMs)
  }

  /** `sendData` of `size`-byte values over `connectService` from the driver on `a` to the sink's server on `b`. */
  service(size: number, warmupMs: number, windowMs: number): Promise<OneWay> {
    return this.#oneWay('serviceLoad', { service: SERVICE, size }, warmupMs, windowMs)
  }

  async #oneWay(method: string, arg: object, warmupMs: number, windowMs: number): Promise<OneWay> {
    const mesh = this.#mesh()
    const timeout = warmupMs + windowMs + CONTROL_TIMEOUT_MS
    const driver = mesh.worker('driver', { node: 'a' })
    const measured = mesh.worker('sink', { node: 'b' }).call<OneWay>('measure', { warmupMs, windowMs }, { timeout })
    const load = driver.call(method, arg, { timeout })
    try {
      return await Promise.race([
        measured,
        load.then(() => {
          throw new Error(`${method} ended before the sink's window closed`)
        }),
      ])
    } finally {
      await driver.call('stop', undefined, { timeout: CONTROL_TIMEOUT_MS })
      await load
    }
  }

  async stop(): Promise<void> {
    await this.#client?.close()
    this.#client = undefined
    await Promise.all(this.#nodes.map((node) => this.#children.stop(node)))
    this.#dir.remove()
  }
}

/** Resolves when the client's view shows `name` running on `node` (a registry event, or already so). */
async function whenRunning(client: MeshClient, name: string, node: string): Promise<void> {
  const matches = (w: WorkerInfo) => w.name === name && w.node === node && w.state === 'running'
  let onUp: ((w: WorkerInfo) => void) | undefined
  const up = new Promise<void>((resolve) => {
    onUp = (w) => {
      if (matches(w)) resolve()
    }
    client.on('worker:up', onUp)
  })
  try {
    if ((await client.workers()).some(matches)) return
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${name} on ${node} did not start`)), CONTROL_TIMEOUT_MS)
    })
    await Promise.race([up, late]).finally(() => clearTimeout(timer))
  } finally {
    if (onUp) client.off('worker:up', onUp)
  }
}
