import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { connect, createServer, type Socket } from 'node:net'
import fc from 'fast-check'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { hold } from '../reliability/lab-cluster.js'
import { createLab, type Lab, type LabHost, requireRoot, runOn } from './netns.js'
import { type ProxyControl, startProxy, type TcpProxy } from './proxy.js'
import { startProxyIn } from './proxy-remote.js'

interface Target {
  port: number
  received: Buffer[]
  sockets: Socket[]
  /** Resolves once `n` bytes in all have arrived. */
  bytes(n: number): Promise<Buffer>
  close(): void
}

/** A server on loopback that echoes (or only collects, with `echo: false`) what it receives. */
async function server(echo = true): Promise<Target> {
  const received: Buffer[] = []
  const sockets: Socket[] = []
  let total = 0
  const waiters: Array<{ n: number; resolve: (all: Buffer) => void }> = []
  const srv = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.push(socket)
    socket.on('error', () => {})
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk)
      total += chunk.length
      for (const w of waiters.filter((w) => total >= w.n)) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve(Buffer.concat(received))
      }
      if (echo) socket.write(chunk)
    })
    socket.on('end', () => socket.end())
  })
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  return {
    port: (srv.address() as { port: number }).port,
    received,
    sockets,
    bytes: (n) =>
      total >= n ? Promise.resolve(Buffer.concat(received)) : new Promise((resolve) => waiters.push({ n, resolve })),
    close() {
      for (const socket of sockets) socket.destroy()
      srv.close()
    },
  }
}

async function dial(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port })
  socket.on('error', () => {})
  await once(socket, 'connect')
  return socket
}

/** Resolves with exactly `n` bytes read from `socket`. */
function readBytes(socket: Socket, n: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let got = 0
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      chunks.push(chunk)
      got += chunk.length
      if (got >= n) {
        socket.off('data', onData)
        socket.off('close', onClose)
        resolve(Buffer.concat(chunks).subarray(0, n))
      }
    }
    const onClose = () => reject(new Error(`closed after ${got} of ${n} bytes`))
    socket.on('data', onData)
    socket.once('close', onClose)
  })
}

describe('TcpProxy (loopback)', () => {
  const owned: Array<{ close(): unknown }> = []
  const own = <T extends { close(): unknown }>(thing: T): T => {
    owned.push(thing)
    return thing
  }

  afterEach(async () => {
    for (const thing of owned.splice(0).reverse()) await thing.close()
  })

  async function setup(echo = true, seed?: number): Promise<{ proxy: TcpProxy; target: Target }> {
    const target = await server(echo)
    own(target)
    const proxy = own(await startProxy({ target: { host: '127.0.0.1', port: target.port }, seed }))
    return { proxy, target }
  }

  it('passes bytes through unchanged in both directions, including more than its high-water mark', async () => {
    const { proxy } = await setup()
    const client = await dial(proxy.port)
    const payload = randomBytes(3 * 1024 * 1024)
    const echoed = readBytes(client, payload.length)
    client.write(payload)
    expect((await echoed).equals(payload)).toBe(true)
    const stats = await proxy.stats()
    expect(stats).toMatchObject({ accepted: 1, toTarget: payload.length, toClient: payload.length, corrupted: 0 })
    client.destroy()
  })

  it('keeps any split of a stream intact (property: the bytes out are the bytes in)', async () => {
    const { proxy } = await setup()
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 5000 }), { minLength: 1, maxLength: 30 }),
        async (parts) => {
          const client = await dial(proxy.port)
          const all = Buffer.concat(parts)
          const echoed = readBytes(client, all.length)
          for (const part of parts) client.write(part)
          const back = await echoed
          client.destroy()
          return back.equals(all)
        },
      ),
      { numRuns: 25 },
    )
  })

  it('delays every chunk in each direction and keeps their order, also when the delay shrinks', async () => {
    const { proxy } = await setup()
    const client = await dial(proxy.port)
    const sentAt: number[] = []
    const seen: Array<{ seq: number; at: number }> = []
    const waiters: Array<{ n: number; resolve: () => void }> = []
    let partial = Buffer.alloc(0)
    client.on('data', (chunk: Buffer) => {
      partial = Buffer.concat([partial, chunk])
      while (partial.length >= 4) {
        seen.push({ seq: partial.readUInt32BE(0), at: performance.now() })
        partial = partial.subarray(4)
      }
      for (const w of waiters.filter((w) => seen.length >= w.n)) w.resolve()
    })
    const echoes = (n: number) => new Promise<void>((resolve) => waiters.push({ n, resolve }))
    const send = async (count: number) => {
      for (let i = 0; i < count; i++) {
        const frame = Buffer.alloc(4)
        frame.writeUInt32BE(sentAt.length)
        sentAt.push(performance.now())
        client.write(frame)
        await hold(5)
      }
    }
    const DELAY = 150
    await proxy.delay(DELAY)
    await send(30)
    await echoes(30)
    const roundTrips = seen.map((s) => s.at - (sentAt[s.seq] as number))
    // Then a longer delay, cut to 0 in mid-stream: what is sent after must not overtake.
    await proxy.delay(300)
    await send(10)
    await proxy.delay(0)
    await send(10)
    await echoes(50)
    expect(seen.map((s) => s.seq)).toEqual(Array.from({ length: 50 }, (_v, i) => i))
    // Through the proxy and back: delayed once each way.
    for (const rtt of roundTrips) expect(rtt).toBeGreaterThanOrEqual(2 * DELAY)
    const afterCut = (seen[40]?.at ?? 0) - (sentAt[40] as number)
    console.log(
      `[proxy] delay ${DELAY} ms each way: round trips ${Math.round(Math.min(...roundTrips))}-` +
        `${Math.round(Math.max(...roundTrips))} ms; the first chunk after delay 300 -> 0 waited ${Math.round(afterCut)} ms for those before it`,
    )
    expect(afterCut).toBeGreaterThan(200)
    client.destroy()
  })

  it('stalls without closing (new connections wait too) and delivers everything in order on resume', async () => {
    const { proxy, target } = await setup()
    const client = await dial(proxy.port)
    await readBytesAfter(client, 'warm')
    await proxy.stall()
    client.write('held-')
    client.write('back')
    const late = await dial(proxy.port)
    late.write('late')
    await hold(300)
    expect(Buffer.concat(target.received).toString()).toBe('warm')
    expect(target.sockets).toHaveLength(1)
    expect(client.closed || late.closed).toBe(false)
    const both = Promise.all([readBytes(client, 'held-back'.length), readBytes(late, 4)])
    await proxy.resume()
    const [a, b] = await both
    expect([a.toString(), b.toString()]).toEqual(['held-back', 'late'])
    expect(target.sockets).toHaveLength(2)
    client.destroy()
    late.destroy()
  })

  it('stallOpen stalls only the connections open now; a new one passes; resume delivers what was held', async () => {
    const { proxy, target } = await setup()
    const old = await dial(proxy.port)
    await readBytesAfter(old, 'warm')
    await proxy.stallOpen()
    old.write('held')
    const fresh = await dial(proxy.port)
    // The new connection echoes through while the old one is stuck.
    await readBytesAfter(fresh, 'fresh')
    expect(Buffer.concat(target.received).toString()).toBe('warmfresh')
    const held = readBytes(old, 'held'.length)
    await proxy.resume()
    expect((await held).toString()).toBe('held')
    old.destroy()
    fresh.destroy()
  })

  it('flips exactly the next K bytes of one direction (optionally after N), then passes bytes unchanged', async () => {
    const { proxy, target } = await setup(false)
    const client = await dial(proxy.port)
    await proxy.corrupt({ bytes: 10, direction: 'to-target' })
    client.write(Buffer.alloc(100))
    await target.bytes(100)
    await proxy.corrupt({ bytes: 3, after: 50, direction: 'to-target' })
    client.write(Buffer.alloc(100))
    const got = await target.bytes(200)
    const flipped = [...got].flatMap((b, i) => (b !== 0 ? [i] : []))
    expect(flipped).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 150, 151, 152])
    expect((await proxy.stats()).corrupted).toBe(13)
    client.destroy()
  })

  it('corrupts only the direction it is given', async () => {
    const { proxy, target } = await setup()
    const client = await dial(proxy.port)
    await proxy.corrupt({ bytes: 5, direction: 'to-client' })
    const back = readBytes(client, 20)
    client.write(Buffer.alloc(20))
    expect([...(await back)].map((b) => (b === 0 ? 0 : 1))).toEqual([1, 1, 1, 1, 1, ...Array(15).fill(0)])
    expect([...(await target.bytes(20))]).toEqual(Array(20).fill(0))
    client.destroy()
  })

  it('flips bytes with a probability, the same ones for the same seed', async () => {
    const runs: Buffer[] = []
    for (const _run of [1, 2]) {
      const { proxy, target } = await setup(false, 1234)
      await proxy.corrupt({ probability: 0.1, direction: 'both' })
      const client = await dial(proxy.port)
      client.write(Buffer.alloc(10_000))
      runs.push(await target.bytes(10_000))
      client.destroy()
    }
    const [first, second] = runs as [Buffer, Buffer]
    const flips = [...first].filter((b) => b !== 0).length
    expect(flips).toBeGreaterThan(800)
    expect(flips).toBeLessThan(1200)
    expect(first.equals(second)).toBe(true)
  })

  it('closeConnections ends both sides with a FIN; reset sends an RST to both', async () => {
    const { proxy, target } = await setup()
    const a = await dial(proxy.port)
    await readBytesAfter(a, 'a')
    const ends = [once(a, 'end'), once(target.sockets[0] as Socket, 'end')]
    await proxy.closeConnections()
    await Promise.all(ends)
    const b = await dial(proxy.port)
    await readBytesAfter(b, 'b')
    const errors = [b, target.sockets[1] as Socket].map(
      (s) =>
        new Promise<string | undefined>((resolve) => s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code))),
    )
    await proxy.reset()
    expect(await Promise.all(errors)).toEqual(['ECONNRESET', 'ECONNRESET'])
  })

  it('close() ends every socket and the listener, and is idempotent', async () => {
    const { proxy } = await setup()
    const client = await dial(proxy.port)
    await readBytesAfter(client, 'x')
    const closed = once(client, 'close')
    await Promise.all([proxy.close(), proxy.close()])
    await closed
    const refused = connect({ host: '127.0.0.1', port: proxy.port })
    const [error] = (await once(refused, 'error')) as [NodeJS.ErrnoException]
    expect(error.code).toBe('ECONNREFUSED')
    expect((await proxy.stats()).open).toBe(0)
  })
})

describe('startProxyIn (a lab namespace)', () => {
  let lab: Lab
  let proxy: ProxyControl | undefined

  beforeAll(async () => {
    requireRoot()
    lab = await createLab({ hosts: 2 })
  })

  afterAll(async () => {
    await proxy?.close()
    await lab?.destroy()
  })

  it('relays between hosts inside the lab, with its faults as functions', async () => {
    const [h1, h2] = lab.hosts as [LabHost, LabHost]
    const echo = h2.exec(
      process.execPath,
      [
        '-e',
        `require('net').createServer((s)=>{s.on('error',()=>{});s.pipe(s)}).listen(7100,'${h2.ip}',()=>console.log('up'))`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    await once(echo.stdout as NodeJS.ReadableStream, 'data')
    proxy = await startProxyIn(h1, { port: 7101, target: { host: h2.ip, port: 7100 } })
    expect(proxy).toMatchObject({ host: h1.ip, port: 7101 })
    await proxy.delay(200)
    // A client on h2 sends 64 KiB through the proxy on h1 and back; it prints the round trip and a hash check.
    const script = `
      const s = require('net').connect({ host: '${h1.ip}', port: 7101 })
      const out = require('crypto').randomBytes(65536); const back = []; let n = 0; const t0 = Date.now()
      s.on('connect', () => s.write(out))
      s.on('data', (c) => { back.push(c); n += c.length; if (n >= out.length) {
        console.log(JSON.stringify({ same: Buffer.concat(back).equals(out), ms: Date.now() - t0 })); s.destroy() } })`
    const { code, out } = await runOn(h2, process.execPath, ['-e', script])
    expect(code).toBe(0)
    const result = JSON.parse(out) as { same: boolean; ms: number }
    console.log(
      `[proxy in ${h1.name}] 64 KiB ${h2.name} -> ${h1.name} -> ${h2.name} with 200 ms each way: ${result.ms} ms`,
    )
    expect(result.same).toBe(true)
    expect(result.ms).toBeGreaterThanOrEqual(400)
    expect(await proxy.stats()).toMatchObject({ accepted: 1, toTarget: 65536, toClient: 65536 })
    await proxy.close()
    await expect(proxy.stats()).rejects.toThrow(/gone/)
  })
})

/** Writes `text` and waits for its echo: the relay is then set up end to end. */
async function readBytesAfter(socket: Socket, text: string): Promise<void> {
  const echoed = readBytes(socket, text.length)
  socket.write(text)
  expect((await echoed).toString()).toBe(text)
}
