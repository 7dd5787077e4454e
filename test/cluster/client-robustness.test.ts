import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'
import { AbortError, InvalidArgumentError, NodeDownError } from '@wmesh/core'
import { type ConnectMeshOptions, connectMesh, MeshClient } from '@wmesh/mesh'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { eventually, type LoopbackCluster, loopbackCluster } from '../support/cluster.js'
import { freePorts, meshFixtures } from '../support/node-process.js'

const echo = { file: `${meshFixtures}echo-worker.mjs` }
const logger = pino({ level: 'silent' })
let cluster: LoopbackCluster | undefined
const clients: MeshClient[] = []
const servers: Server[] = []
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()))
  for (const server of servers.splice(0)) server.close()
  await cluster?.stop()
  cluster = undefined
})

/** A client of `cluster` with its own options; closed after the test. */
async function clientOf(c: LoopbackCluster, options: Partial<ConnectMeshOptions> = {}): Promise<MeshClient> {
  const client = await connectMesh({ secretFile: c.secretFile, join: c.seeds, mdns: false, logger, ...options })
  clients.push(client)
  return client
}

/** The timers and sockets this process holds: what a client that has ended must have given back. */
function timersAndSockets(): string[] {
  return process
    .getActiveResourcesInfo()
    .filter((r) => r === 'Timeout' || r === 'TCPSocketWrap')
    .sort()
}

/** Polls until the process holds no more timers and sockets than `baseline` (a socket takes a tick to go). */
async function expectGivenBack(baseline: string[]): Promise<void> {
  // Not vi.waitFor: its own timer would be counted.
  const deadline = performance.now() + 2000
  while (timersAndSockets().length > baseline.length && performance.now() < deadline) await delay(20)
  expect(timersAndSockets()).toEqual(baseline)
}

/** Rejection of `promise`, and how long it took to settle. */
async function failure(promise: Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = performance.now()
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  return { error, ms: performance.now() - started }
}

describe('MeshClient robustness', () => {
  it('gives back every timer and socket when connecting fails', async () => {
    cluster = await loopbackCluster([{ echo }])
    const baseline = timersAndSockets()

    // Every node refuses a wrong secret alike, so connecting fails at once.
    const refused = connectMesh({ secret: 'not-the-cluster-secret', join: cluster.seeds, mdns: false, logger })
    await expect(refused).rejects.toMatchObject({ code: 'ERR_AUTH' })
    await expectGivenBack(baseline)

    // Nothing listens there: connecting fails after its timeout.
    const [closedPort] = await freePorts(1)
    const unreachable = connectMesh({
      secret: 's',
      join: [`127.0.0.1:${closedPort}`],
      mdns: false,
      logger,
      timeout: 300,
    })
    await expect(unreachable).rejects.toBeInstanceOf(NodeDownError)
    await expectGivenBack(baseline)
  })

  it('close() while a dial is in flight leaves no link behind', async () => {
    cluster = await loopbackCluster([{ echo }])
    const nodePort = cluster.ports[0] as number
    const secret = Buffer.from(readFileSync(cluster.secretFile, 'utf8').trim(), 'utf8')
    // A proxy in front of the node: it calls close() when the client's dial arrives, then lets it through.
    const sockets: Socket[] = []
    let closing: Promise<void> | undefined
    const proxy = createServer((downstream) => {
      closing ??= client.close()
      const upstream = connect({ host: '127.0.0.1', port: nodePort })
      for (const [from, to] of [
        [downstream, upstream],
        [upstream, downstream],
      ] as const) {
        from.pipe(to)
        from.on('error', () => to.destroy())
        from.on('close', () => to.destroy())
      }
      sockets.push(downstream, upstream)
    })
    servers.push(proxy)
    proxy.listen(0, '127.0.0.1')
    await once(proxy, 'listening')
    const { port } = proxy.address() as { port: number }
    const client = new MeshClient({ secret, join: [`127.0.0.1:${port}`], mdns: false, logger })
    clients.push(client)

    const connecting = client.connect()
    await expect(connecting).rejects.toBeInstanceOf(NodeDownError)
    await closing
    expect(client.linkedNode).toBeUndefined()
    // The link the dial made is ended, not kept open behind the closed client.
    expect(sockets.length).toBeGreaterThan(0)
    // Not events.once: it rejects on the EPIPE a proxied socket may report while the pair is torn down.
    await Promise.all(sockets.map((s) => new Promise((resolve) => (s.closed ? resolve(s) : s.once('close', resolve)))))
  })

  it("bounds a call's wait for a link by the call's own timeout and signal", async () => {
    cluster = await loopbackCluster([{ echo }])
    const client = await clientOf(cluster, { callTimeout: 400 })
    expect(await client.worker('echo').call('echo', 1)).toBe(1)
    cluster.nodes[0]?.child.kill('SIGKILL') // the only node: nothing to relink with
    await eventually(client, () => client.linkedNode === undefined, 5000, 'the link to go down')

    const call = await failure(client.worker('echo').call('echo', 1, { timeout: 500 }))
    expect(call.error).toBeInstanceOf(NodeDownError)
    expect(call.ms).toBeGreaterThanOrEqual(450)
    expect(call.ms).toBeLessThan(1500)

    const ping = await failure(client.ping('n1', { timeout: 300 }))
    expect(ping.error).toBeInstanceOf(NodeDownError)
    expect(ping.ms).toBeLessThan(1300)

    // cast has no options: it waits for a link as long as the client's callTimeout.
    const cast = await failure(client.worker('echo').cast('echo', 1))
    expect(cast.error).toBeInstanceOf(NodeDownError)
    expect(cast.ms).toBeLessThan(1400)

    const aborted = await failure(
      client.worker('echo').call('echo', 1, { timeout: 5000, signal: AbortSignal.timeout(200) }),
    )
    expect(aborted.error).toBeInstanceOf(AbortError)
    expect(aborted.ms).toBeLessThan(1200)
  })

  it('sends every timeout as whole milliseconds and refuses one that is not a number >= 0', async () => {
    cluster = await loopbackCluster([{ echo }])
    const client = await clientOf(cluster, { callTimeout: 2000.5 })
    const ref = client.worker('echo')
    // A timeout that is not an integer used to be dropped by the node as malformed.
    expect(await ref.call('echo', 'default')).toBe('default')
    expect(await ref.call('echo', 'fraction', { timeout: 1000.5 })).toBe('fraction')
    // Beyond what a timer holds: capped, not turned into a timer that fires at once.
    expect(await ref.call('echo', 'huge', { timeout: 2 ** 40 })).toBe('huge')
    expect(await client.ping('n1', { timeout: 999.9 })).toBeGreaterThanOrEqual(0)

    // JavaScript callers can pass anything; the casts stand for them.
    for (const timeout of [Number.NaN, -1, Number.POSITIVE_INFINITY, '1000' as unknown as number]) {
      await expect(ref.call('echo', 1, { timeout })).rejects.toBeInstanceOf(InvalidArgumentError)
      await expect(ref.askResult('k', { timeout })).rejects.toBeInstanceOf(InvalidArgumentError)
      await expect(client.ping('n1', { timeout })).rejects.toBeInstanceOf(InvalidArgumentError)
    }
    const secretFile = cluster.secretFile
    for (const option of [{ callTimeout: Number.NaN }, { timeout: '5000' as unknown as number }, { timeout: -1 }]) {
      const outcome = await connectMesh({ secretFile, join: cluster.seeds, mdns: false, logger, ...option }).then(
        (c) => clients.push(c),
        (e: unknown) => e,
      )
      expect(outcome).toBeInstanceOf(InvalidArgumentError)
    }
  })
})

describe('MeshClient connect timeout', () => {
  it('is kept against a listener that accepts and never answers (was the 5 s handshake deadline)', async () => {
    const silent = createServer((socket) => socket.on('error', () => {}))
    servers.push(silent)
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    const { port } = silent.address() as { port: number }
    const secret = Buffer.from('a secret no node here checks'.padEnd(32, '.'))
    const { error, ms } = await failure(
      connectMesh({ secret, join: [`127.0.0.1:${port}`], mdns: false, timeout: 1000, logger }),
    )
    expect(error).toBeInstanceOf(NodeDownError)
    expect(ms).toBeLessThan(3000)
  })
})
