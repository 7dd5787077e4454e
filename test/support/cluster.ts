import { connectMesh, type MeshClient, MeshNode, type NodeConfigInput } from '@wmesh/mesh'
import { pino } from 'pino'
import { freePorts, killAll, type NodeProcess, startNodeProcess, tempCluster } from './node-process.js'

export interface LoopbackCluster {
  dir: string
  secretFile: string
  ports: number[]
  nodes: NodeProcess[]
  seeds: string[]
  /** Starts (or restarts) node `i` with its workers. */
  start(i: number): NodeProcess
  client(): Promise<MeshClient>
  stop(): Promise<void>
}

/**
 * `n` real `wmesh start` processes on loopback, joined by seeds, with the given workers
 * per node. Fast failure detection settings keep the tests short without changing logic.
 */
export async function loopbackCluster(
  workers: Array<Record<string, unknown>>,
  extra: Record<string, unknown> = {},
): Promise<LoopbackCluster> {
  const { dir, secretFile } = tempCluster()
  const ports = await freePorts(workers.length)
  const seeds = ports.map((p) => `127.0.0.1:${p}`)
  const nodes: NodeProcess[] = []
  const clients: MeshClient[] = []
  const start = (i: number): NodeProcess => {
    const node = startNodeProcess(dir, {
      name: `n${i + 1}`,
      listen: `127.0.0.1:${ports[i]}`,
      join: seeds,
      mdns: false,
      secretFile,
      logLevel: 'info',
      workers: workers[i],
      ...extra,
    })
    nodes[i] = node
    return node
  }
  for (let i = 0; i < workers.length; i++) start(i)
  await Promise.all(nodes.map((n) => n.waitFor((l) => String(l.msg).startsWith(`node ${n.name} running`), 'running')))
  return {
    dir,
    secretFile,
    ports,
    nodes,
    seeds,
    start,
    async client() {
      const client = await connectMesh({ cluster: 'wmesh', secretFile, join: seeds, mdns: false })
      clients.push(client)
      return client
    },
    async stop() {
      await Promise.all(clients.map((c) => c.close()))
      await killAll(nodes)
    },
  }
}

/** Re-checks `predicate` (a throw counts as not yet) on every event of `client` and every 50 ms until it holds. */
export async function eventually<T>(
  client: MeshClient,
  predicate: () => Promise<T | undefined | false> | T | undefined | false,
  timeout: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeout
  let lastError: unknown
  for (;;) {
    try {
      const value = await predicate()
      if (value) return value
    } catch (error) {
      // Not converged yet (say, the worker is not in this view yet): try again.
      lastError = error
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeout} ms waiting for ${what}${lastError ? ` (last error: ${lastError})` : ''}`,
      )
    }
    await new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer)
        for (const e of events) client.off(e, wake)
        resolve()
      }
      const events = ['node:up', 'node:down', 'worker:up', 'worker:down', 'service:up', 'service:down'] as const
      for (const e of events) client.on(e, wake)
      const timer = setTimeout(wake, 50)
    })
  }
}

/** Polls a node's (or client's) view until it lists a running `worker` on node `on`. */
export async function untilRunningOn(
  mesh: { workers(): Promise<Array<{ node: string; name: string; state: string }>> },
  on: string,
  worker: string,
  timeout = 5000,
): Promise<void> {
  const deadline = Date.now() + timeout
  while (!(await mesh.workers()).some((w) => w.node === on && w.name === worker && w.state === 'running')) {
    if (Date.now() > deadline) throw new Error(`never saw ${worker} running on ${on} within ${timeout} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/**
 * Two in-process nodes on loopback: `a` (no workers, joins `b`) and `b` with `workersOfB`,
 * started, with `b`'s worker `waitFor` in `a`'s view when it is named. Both go into `owned`
 * before they start, for the caller to stop.
 */
export async function nodePair(
  owned: MeshNode[],
  workersOfB: NonNullable<NodeConfigInput['workers']>,
  options: { extra?: Record<string, unknown>; waitFor?: string } = {},
): Promise<{ a: MeshNode; b: MeshNode }> {
  const { secretFile } = tempCluster()
  const [pa, pb] = await freePorts(2)
  const base = { mdns: false, secretFile, logLevel: 'warn' as const, ...options.extra }
  const logger = pino({ level: 'silent' })
  const a = new MeshNode({ ...base, name: 'a', listen: `127.0.0.1:${pa}`, join: [`127.0.0.1:${pb}`] }, { logger })
  const b = new MeshNode({ ...base, name: 'b', listen: `127.0.0.1:${pb}`, workers: workersOfB }, { logger })
  owned.push(a, b)
  await Promise.all([a.start(), b.start()])
  if (options.waitFor !== undefined) await untilRunningOn(a, 'b', options.waitFor)
  return { a, b }
}
