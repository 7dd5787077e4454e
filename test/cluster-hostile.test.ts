import { once } from 'node:events'
import { connect, createServer, type Socket } from 'node:net'
import { connectMesh, type MeshClient } from '@wmesh/mesh'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { eventually, type LoopbackCluster, loopbackCluster } from './support/cluster.js'
import { meshFixtures, startNodeProcess } from './support/node-process.js'

const echo = { file: `${meshFixtures}echo-worker.mjs` }

/** Opens a raw TCP connection to a node's link port. */
async function raw(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port })
  socket.on('error', () => {})
  await once(socket, 'connect')
  return socket
}

/** Log lines of node `n` that mention the peer at `localPort`. */
function linesAbout(cluster: LoopbackCluster, n: number, localPort: number) {
  return (cluster.nodes[n]?.lines ?? []).filter((l) => String(l.peer ?? '').endsWith(`:${localPort}`))
}

describe('hostile input at a node link port', () => {
  let cluster: LoopbackCluster
  let client: MeshClient
  const view = async () => (await client.nodes()).map((n) => n.id).sort()
  let before: string[]

  beforeAll(async () => {
    cluster = await loopbackCluster([{ echo }, { echo }])
    client = await cluster.client()
    before = await eventually(
      client,
      async () => {
        const ids = await view()
        return ids.length === 2 ? ids : undefined
      },
      5000,
      'two nodes',
    )
  }, 30_000)

  afterAll(async () => {
    await cluster?.stop()
  })

  it('closes a connection sending garbage at once, logs it once, and changes nothing', async () => {
    const socket = await raw(cluster.ports[0] as number)
    const localPort = socket.localPort as number
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    await once(socket, 'close')
    const n1 = cluster.nodes[0]
    await n1?.waitFor((l) => String(l.peer ?? '').endsWith(`:${localPort}`), 'the refusal')
    expect(linesAbout(cluster, 0, localPort)).toHaveLength(1)
    expect(await view()).toEqual(before)
  })

  it('does not warn about a port probe that connects and closes without a byte (a liveness check)', async () => {
    const socket = await raw(cluster.ports[0] as number)
    const localPort = socket.localPort as number
    socket.end()
    await once(socket, 'close')
    // A garbage connection after it proves the node has handled the probe by then.
    const after = await raw(cluster.ports[0] as number)
    const afterPort = after.localPort as number
    after.write('x'.repeat(16))
    await once(after, 'close')
    await cluster.nodes[0]?.waitFor((l) => String(l.peer ?? '').endsWith(`:${afterPort}`), 'the later refusal')
    expect(linesAbout(cluster, 0, localPort)).toEqual([])
  })

  it('closes a connection that announces an oversize frame before reading it', async () => {
    const socket = await raw(cluster.ports[0] as number)
    socket.write(Buffer.from([0xff, 0xff, 0xff, 0xff]))
    await once(socket, 'close')
    expect(await client.worker('echo').call('echo', 'still serving')).toBe('still serving')
  })

  it('closes a slowloris connection at the handshake deadline', async () => {
    const socket = await raw(cluster.ports[0] as number)
    const localPort = socket.localPort as number
    const opened = Date.now()
    socket.write(Buffer.from([0x00])) // one byte, then nothing
    await once(socket, 'close')
    expect(Date.now() - opened).toBeGreaterThanOrEqual(4000)
    expect(Date.now() - opened).toBeLessThan(8000)
    await cluster.nodes[0]?.waitFor((l) => String(l.peer ?? '').endsWith(`:${localPort}`), 'the refusal')
    expect(linesAbout(cluster, 0, localPort)).toHaveLength(1)
    expect(linesAbout(cluster, 0, localPort)[0]?.code).toBe('ERR_HANDSHAKE_TIMEOUT')
  }, 15_000)

  it('refuses a replayed handshake', async () => {
    // Record what a real client sends through a relay, then replay it to the node.
    const recorded: Buffer[] = []
    const target = cluster.ports[0] as number
    const relay = createServer((inbound) => {
      const outbound = connect({ host: '127.0.0.1', port: target })
      inbound.on('data', (chunk: Buffer) => recorded.push(chunk))
      inbound.pipe(outbound).pipe(inbound)
      inbound.on('error', () => outbound.destroy())
      outbound.on('error', () => inbound.destroy())
    })
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve))
    const relayPort = (relay.address() as { port: number }).port
    const recorder = await connectMesh({
      secretFile: cluster.secretFile,
      join: [`127.0.0.1:${relayPort}`],
      mdns: false,
    })
    expect(await recorder.worker('echo').call('echo', 'via relay')).toBe('via relay')
    await recorder.close()
    relay.close()
    const socket = await raw(target)
    const localPort = socket.localPort as number
    const replies: Buffer[] = []
    socket.on('data', (chunk: Buffer) => replies.push(chunk))
    socket.write(Buffer.concat(recorded))
    await once(socket, 'close')
    await cluster.nodes[0]?.waitFor((l) => String(l.peer ?? '').endsWith(`:${localPort}`), 'the refusal')
    const refusal = linesAbout(cluster, 0, localPort)
    expect(refusal).toHaveLength(1)
    expect(refusal[0]?.code).toBe('ERR_AUTH')
    expect(await view()).toEqual(before)
  })

  it('a second live node with an existing name: the newer incarnation wins and the refusal is logged on both', async () => {
    const twin = startNodeProcess(cluster.dir, {
      name: 'n1',
      listen: '127.0.0.1:0',
      join: cluster.seeds,
      mdns: false,
      secretFile: cluster.secretFile,
      workers: { echo },
    })
    try {
      await twin.waitFor((l) => String(l.msg).startsWith('node n1 running'), 'the twin running')
      const old = cluster.nodes[0]
      await old?.waitFor((l) => /uses this node's name/.test(String(l.msg)), 'the old n1 refusing its twin')
      await twin.waitFor((l) => /uses this node's name/.test(String(l.msg)), 'the twin refusing the old n1')
      // n2 keeps only the newer n1; the old one is cut off from it (ask n2 through a client of its own).
      const viaN2 = await connectMesh({
        secretFile: cluster.secretFile,
        join: [cluster.seeds[1] as string],
        mdns: false,
      })
      const n2view = await eventually(
        viaN2,
        async () => {
          const v = (await viaN2.worker('echo', { node: 'n2' }).call('view')) as { ids: string[] }
          const n1s = v.ids.filter((id) => id.startsWith('n1:'))
          return n1s.length === 1 && !before.includes(n1s[0] as string) ? v : undefined
        },
        8000,
        "n2's view to hold only the newer n1",
      )
      expect(n2view.ids.filter((id) => id.startsWith('n1:'))).toHaveLength(1)
      await viaN2.close()
    } finally {
      twin.child.kill('SIGKILL')
      await twin.exited
    }
  })
})
