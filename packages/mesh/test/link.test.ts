import { createHash } from 'node:crypto'
import { once } from 'node:events'
import * as net from 'node:net'
import { Writable } from 'node:stream'
import * as tls from 'node:tls'
import { Worker } from 'node:worker_threads'
import {
  FrameDecodeError,
  FrameDecoder,
  FrameTooLargeError,
  InvalidArgumentError,
  packValue,
  unpackFrame,
} from '@wmesh/core'
import { pino } from 'pino'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { Link, type LinkInit, type StillHeard, tlsConnectOptions, tlsServerOptions } from '../src/link.js'
import {
  AuthenticationError,
  HandshakeError,
  HandshakeTimeoutError,
  HeartbeatTimeoutError,
  LinkClosedError,
} from '../src/link-errors.js'
import { LinkHandshake } from '../src/link-handshake.js'

const secret = Buffer.from('test secret')
/** Generous: these waits end as soon as the condition holds. */
const until = { timeout: 10_000, interval: 5 }
const cleanups: Array<() => void> = []
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup()
})

/** Log lines, parsed. */
function capture(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line))
      done()
    },
  })
  return { logger: pino({ level: 'debug' }, sink), lines }
}

function init(role: LinkInit['role'], localId: string, extra: Partial<LinkInit> = {}): LinkInit {
  return { role, cluster: 'test', secret, localId, localKind: 'node', ...extra }
}

/** A server on 127.0.0.1:0 handing each (secure) connection to `onSocket`. */
async function listen(
  onSocket: (socket: net.Socket) => void,
  server: net.Server = net.createServer(),
): Promise<number> {
  server.on(server instanceof tls.Server ? 'secureConnection' : 'connection', (socket: net.Socket) => {
    socket.on('error', () => {})
    cleanups.push(() => socket.destroy())
    onSocket(socket)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  cleanups.push(() => server.close())
  return (server.address() as net.AddressInfo).port
}

async function dial(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {}) // resets from a peer that refused us are expected
  cleanups.push(() => socket.destroy())
  await once(socket, 'connect')
  return socket
}

/** An acceptor server whose establish results are collected in order. */
async function acceptorServer(extra: Partial<LinkInit> = {}, logs = capture(), stillHeard?: StillHeard) {
  const results: Array<Promise<Link>> = []
  const port = await listen((socket) => {
    const result = Link.establish(socket, init('acceptor', 'acc:1', extra), { logger: logs.logger, stillHeard })
    result.then(
      (link) => cleanups.push(() => link.destroy()),
      () => {},
    )
    results.push(result)
  })
  const next = async (): Promise<Link> => {
    await vi.waitFor(() => expect(results.length).toBeGreaterThan(0), until)
    return results.shift() as Promise<Link>
  }
  return { port, logs, next }
}

async function linkPair(dialerExtra: Partial<LinkInit> = {}, acceptorExtra: Partial<LinkInit> = {}) {
  const server = await acceptorServer(acceptorExtra)
  const socket = await dial(server.port)
  const dialer = await Link.establish(socket, init('dialer', 'dial:1', dialerExtra), { logger: server.logs.logger })
  cleanups.push(() => dialer.destroy())
  return { dialer, acceptor: await server.next(), socket, server }
}

function frame(value: unknown): Buffer {
  const payload = packValue(value)
  const out = Buffer.alloc(4 + payload.length)
  out.writeUInt32BE(payload.length)
  out.set(payload, 4)
  return out
}

/** A peer speaking the wire protocol by hand. */
class RawPeer {
  readonly #values: unknown[] = []
  #wake: (() => void) | undefined
  readonly #frames = new FrameDecoder()
  constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const payload of this.#frames.decode(chunk)) this.#values.push(unpackFrame(payload))
      this.#wake?.()
    })
  }
  async next(): Promise<unknown> {
    while (this.#values.length === 0) await new Promise<void>((resolve) => (this.#wake = resolve))
    return this.#values.shift()
  }
  send(...values: unknown[]): void {
    this.socket.write(Buffer.concat(values.map(frame)))
  }
  /** Runs our side of the handshake; `extra` goes out in the same write as the last message. */
  async handshake(role: LinkInit['role'], extra: unknown[] = []): Promise<void> {
    const machine = new LinkHandshake({ role, cluster: 'test', secret, localId: `raw-${role}:1`, localKind: 'node' })
    const hello = machine.start()
    if (hello) this.send(hello)
    while (machine.state !== 'done') {
      const step = machine.receive(await this.next())
      if (step.reply) this.send(step.reply, ...(step.peer ? extra : []))
    }
  }
}

/** A hand-driven peer that dials `server` and completes the handshake, and the server's link to it. */
async function rawDialer(server: { port: number; next(): Promise<Link> }): Promise<{ raw: RawPeer; link: Link }> {
  const raw = new RawPeer(await dial(server.port))
  await raw.handshake('dialer')
  return { raw, link: await server.next() }
}

function digest(value: unknown): unknown {
  return Buffer.isBuffer(value) ? `bin:${createHash('sha256').update(value).digest('hex')}` : value
}

/** Relays one connection to `port`; on 'inject', also writes `frame` upstream every 50 ms. */
const RELAY = `
const { parentPort, workerData } = require('node:worker_threads')
const net = require('node:net')
const server = net.createServer((client) => {
  const upstream = net.connect(workerData.port, '127.0.0.1')
  client.pipe(upstream).pipe(client)
  client.on('error', () => {})
  upstream.on('error', () => {})
  parentPort.on('message', () => setInterval(() => upstream.write(Buffer.from(workerData.frame)), 50))
})
server.listen(0, '127.0.0.1', () => parentPort.postMessage(server.address().port))
`

function closeEvents(link: Link): Array<Error | undefined> {
  const events: Array<Error | undefined> = []
  link.on('close', (error) => events.push(error))
  return events
}

describe('Link over TCP', () => {
  it('establishes both sides and carries messages both ways in order', async () => {
    const { dialer, acceptor } = await linkPair()
    expect([dialer.peerId, dialer.peerKind, dialer.role]).toEqual(['acc:1', 'node', 'dialer'])
    expect([acceptor.peerId, acceptor.role, acceptor.remoteAddress]).toEqual(['dial:1', 'acceptor', '127.0.0.1'])
    const values = (side: string) =>
      Array.from({ length: 2000 }, (_, i) => (i % 500 === 7 ? Buffer.alloc(100_000, i % 256) : { side, i }))
    const received = { dialer: [] as unknown[], acceptor: [] as unknown[] }
    dialer.on('message', (m) => received.dialer.push(m))
    acceptor.on('message', (m) => received.acceptor.push(m))
    for (const value of values('d')) dialer.send(value)
    for (const value of values('a')) acceptor.send(value)
    await vi.waitFor(() => expect(received.dialer.length + received.acceptor.length).toBe(4000), until)
    // Deep equality on 100 kB buffers is slow in vitest: compare digests.
    expect(received.acceptor.map(digest)).toEqual(values('d').map(digest))
    expect(received.dialer.map(digest)).toEqual(values('a').map(digest))
  })

  it('sends the frames queued in one tick in one socket write', async () => {
    const slow = { heartbeatInterval: 60_000, heartbeatTimeout: 120_000 }
    const { dialer, acceptor, socket } = await linkPair(slow, slow)
    await vi.waitFor(() => expect([typeof dialer.rtt, typeof acceptor.rtt]).toEqual(['number', 'number']), until)
    const write = vi.spyOn(socket, 'write')
    const received: unknown[] = []
    acceptor.on('message', (m) => received.push(m))
    for (let i = 0; i < 100; i++) dialer.send({ i })
    await vi.waitFor(() => expect(received).toHaveLength(100), until)
    expect(write).toHaveBeenCalledTimes(1)
  })

  it('delivers messages that arrive in the same chunk as the WELCOME', async () => {
    const port = await listen((socket) => void new RawPeer(socket).handshake('acceptor', [{ first: 1 }, 'second']))
    const dialer = await Link.establish(await dial(port), init('dialer', 'dial:1'), capture())
    cleanups.push(() => dialer.destroy())
    const received: unknown[] = []
    dialer.on('message', (m) => received.push(m))
    await vi.waitFor(() => expect(received).toEqual([{ first: 1 }, 'second']), until)
  })

  it('refuses a wrong secret on both sides with AuthenticationError', async () => {
    const server = await acceptorServer()
    const dialing = Link.establish(
      await dial(server.port),
      init('dialer', 'dial:1', { secret: Buffer.from('nope') }),
      capture(),
    )
    await expect(dialing).rejects.toThrow(AuthenticationError)
    await expect(server.next()).rejects.toThrow(AuthenticationError)
  })

  it('refuses another cluster on both sides, naming both clusters', async () => {
    const server = await acceptorServer()
    const dialing = Link.establish(await dial(server.port), init('dialer', 'dial:1', { cluster: 'other' }), capture())
    await expect(dialing).rejects.toThrow('peer is in cluster "test", we are in "other"')
    await expect(server.next()).rejects.toThrow('peer is in cluster "other", we are in "test"')
  })

  it('tells a node that dialed itself', async () => {
    const server = await acceptorServer()
    const dialing = Link.establish(await dial(server.port), init('dialer', 'acc:1'), capture())
    await expect(dialing).rejects.toThrow(/we dialed ourselves/)
    await expect(server.next()).rejects.toThrow(/our own id/)
  })

  it('closes at once, with one log line, on a pre-auth header above 4 KiB', async () => {
    for (const header of [0xffffffff, 4097]) {
      const server = await acceptorServer({ handshakeTimeout: 20_000 })
      const raw = await dial(server.port)
      const started = performance.now()
      raw.write(Buffer.from([header >>> 24, (header >>> 16) & 0xff, (header >>> 8) & 0xff, header & 0xff]))
      await expect(server.next()).rejects.toThrow(HandshakeError)
      await once(raw, 'close')
      expect(performance.now() - started).toBeLessThan(1000)
      expect(server.logs.lines).toHaveLength(1)
      expect(server.logs.lines[0]).toMatchObject({ level: 40, component: 'mesh:link' })
    }
  })

  it('waits for the rest of a frame of exactly 4 KiB (the cap is inclusive)', async () => {
    const server = await acceptorServer({ handshakeTimeout: 300 })
    ;(await dial(server.port)).write(Buffer.from([0, 0, 0x10, 0, 0x80]))
    await expect(server.next()).rejects.toThrow(HandshakeTimeoutError)
  })

  it('refuses garbage at once, and says why when the bytes were framed', async () => {
    const server = await acceptorServer({ handshakeTimeout: 20_000 })
    ;(await dial(server.port)).write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    await expect(server.next()).rejects.toThrow(HandshakeError)
    const raw = new RawPeer(await dial(server.port))
    raw.socket.write(Buffer.from([0, 0, 0, 2, 0xc1, 0xc1]))
    await expect(server.next()).rejects.toThrow(HandshakeError)
    expect(await raw.next()).toEqual({ t: 'refuse', v: 1, reason: 'malformed' })
    await once(raw.socket, 'close')
  })

  it('closes a silent or 1-byte connection at the handshake deadline, on either side', async () => {
    const server = await acceptorServer({ handshakeTimeout: 200 })
    await dial(server.port)
    ;(await dial(server.port)).write(Buffer.from([0]))
    for (let i = 0; i < 2; i++) {
      const started = performance.now()
      await expect(server.next()).rejects.toThrow(HandshakeTimeoutError)
      expect(performance.now() - started).toBeLessThan(1000)
    }
    const mute = await listen(() => {})
    const dialing = Link.establish(await dial(mute), init('dialer', 'dial:1', { handshakeTimeout: 200 }), capture())
    await expect(dialing).rejects.toThrow(HandshakeTimeoutError)
  })

  it('fails with LinkClosedError when the peer hangs up mid-handshake', async () => {
    const server = await acceptorServer()
    ;(await dial(server.port)).end()
    await expect(server.next()).rejects.toThrow(LinkClosedError)
  })

  it('answers pings, sends its own, and never emits them as messages', async () => {
    const server = await acceptorServer({ heartbeatInterval: 50 })
    const { raw, link } = await rawDialer(server)
    const messages: unknown[] = []
    link.on('message', (m) => messages.push(m))
    raw.send({ t: '$ping', n: 41, at: 1234.5 }, 'after')
    const seen: unknown[] = []
    while (!seen.some((v) => (v as { t?: string }).t === '$pong')) seen.push(await raw.next())
    expect(seen).toContainEqual({ t: '$pong', n: 41, at: 1234.5 })
    expect(seen.some((v) => (v as { t?: string }).t === '$ping')).toBe(true)
    await vi.waitFor(() => expect(messages).toEqual(['after']), until)
    expect(() => link.send({ t: '$ping' })).toThrow(InvalidArgumentError)
  })

  it('measures the round trip time', async () => {
    const { dialer } = await linkPair({ heartbeatInterval: 50 })
    expect(dialer.rtt).toBeUndefined()
    await vi.waitFor(() => expect(dialer.rtt).toBeTypeOf('number'), until)
    expect(dialer.rtt).toBeGreaterThanOrEqual(0)
    expect(dialer.rtt).toBeLessThan(1000)
  })

  it('destroys a link whose peer goes silent with HeartbeatTimeoutError after heartbeatTimeout', async () => {
    const server = await acceptorServer({ heartbeatInterval: 50, heartbeatTimeout: 300 })
    const { raw, link } = await rawDialer(server)
    const started = performance.now()
    raw.socket.pause()
    const [error] = await once(link, 'close')
    expect(error).toBeInstanceOf(HeartbeatTimeoutError)
    expect(performance.now() - started).toBeGreaterThanOrEqual(250)
    expect(performance.now() - started).toBeLessThan(1000)
    expect(server.logs.lines.filter((l) => l.code === 'ERR_HEARTBEAT_TIMEOUT')).toHaveLength(1)
  })

  it('outlives a silence other nodes vouch for, up to suspectTimeout, asking again each heartbeatInterval', async () => {
    const asked: string[] = []
    const within: number[] = []
    const stillHeard = (link: Link, ms: number) => {
      asked.push(link.peerId)
      within.push(ms)
      return Promise.resolve(true)
    }
    const settings = { heartbeatInterval: 50, heartbeatTimeout: 300, suspectTimeout: 900 }
    const server = await acceptorServer(settings, capture(), stillHeard)
    const { raw, link } = await rawDialer(server)
    const started = performance.now()
    raw.socket.pause()
    const [error] = await once(link, 'close')
    const silentFor = performance.now() - started
    expect(error).toBeInstanceOf(HeartbeatTimeoutError)
    expect((error as Error).message).toMatch(/limit 900 ms while it is heard elsewhere/)
    expect(silentFor).toBeGreaterThanOrEqual(850)
    expect(silentFor).toBeLessThan(3000)
    // First asked at 300 ms, then every 50 ms until 900 ms: about a dozen times.
    expect(asked.length).toBeGreaterThanOrEqual(5)
    expect(new Set(asked)).toEqual(new Set(['raw-dialer:1']))
    // Half way (150 ms) it asks once, with the time left to the limit; past the limit,
    // answers get up to a heartbeatTimeout, never past suspectTimeout.
    expect(within[0]).toBeLessThanOrEqual(150)
    expect(within[1]).toBe(300)
    expect(Math.min(...within)).toBeGreaterThan(0)
    expect(within.at(-1)).toBeLessThan(300)
    const kept = server.logs.lines.filter((l) => /but it is still heard/.test(String(l.msg)))
    expect(kept).toHaveLength(1)
    expect(server.logs.lines.filter((l) => l.code === 'ERR_HEARTBEAT_TIMEOUT')).toHaveLength(1)
  })

  it('half way to heartbeatTimeout, asks once; suspects the connection if others hear the peer, else waits for the limit', async () => {
    for (const heard of [true, false]) {
      const settings = { heartbeatInterval: 50, heartbeatTimeout: 600, suspectTimeout: 60_000 }
      const asks: number[] = []
      const server = await acceptorServer(settings, capture(), (_link, _within, silent) => {
        asks.push(silent)
        return Promise.resolve(heard)
      })
      const { raw, link } = await rawDialer(server)
      const suspects: number[] = []
      link.on('suspect', (silent) => suspects.push(silent))
      raw.socket.pause()
      await vi.waitFor(() => expect(asks.length).toBeGreaterThanOrEqual(2), until)
      // The first question came half way, before the limit.
      expect(asks[0]).toBeGreaterThanOrEqual(300)
      expect(asks[0]).toBeLessThan(600)
      if (heard) expect(suspects[0]).toBeLessThan(600)
      else expect(suspects).toEqual([])
      link.destroy()
    }
  })

  it('asks nothing of a healthy link whose heartbeats come closer than the half-way mark', async () => {
    // Half of 600 ms is 300 ms, less than a 400 ms ping period: a healthy link is that
    // silent between pings, and no witness could say yes; there is no half-way question.
    const asks: number[] = []
    const settings = { heartbeatInterval: 400, heartbeatTimeout: 600, suspectTimeout: 6000 }
    const server = await acceptorServer(settings, capture(), (_link, _within, silent) => {
      asks.push(silent)
      return Promise.resolve(false)
    })
    const socket = await dial(server.port)
    const dialer = await Link.establish(socket, init('dialer', 'dial:1', settings), capture())
    cleanups.push(() => dialer.destroy())
    const link = await server.next()
    // "Never asks" needs a window: three ping periods of a healthy link.
    await new Promise((resolve) => setTimeout(resolve, 1200))
    expect(link.closed).toBe(false)
    expect(asks).toEqual([])
  })

  it('asks nobody when suspectTimeout is heartbeatTimeout (the check is off)', async () => {
    let asked = 0
    const server = await acceptorServer({ heartbeatInterval: 50, heartbeatTimeout: 300 }, capture(), () => {
      asked++
      return Promise.resolve(true)
    })
    const { raw, link } = await rawDialer(server)
    raw.socket.pause()
    const [error] = await once(link, 'close')
    expect(error).toBeInstanceOf(HeartbeatTimeoutError)
    expect(asked).toBe(0)
  })

  it('goes down at heartbeatTimeout when no other node hears the peer', async () => {
    const settings = { heartbeatInterval: 50, heartbeatTimeout: 300, suspectTimeout: 5000 }
    const server = await acceptorServer(settings, capture(), () => Promise.resolve(false))
    const { raw, link } = await rawDialer(server)
    const started = performance.now()
    raw.socket.pause()
    const [error] = await once(link, 'close')
    expect(error).toBeInstanceOf(HeartbeatTimeoutError)
    expect((error as Error).message).toMatch(/limit 300 ms\): it is hung/)
    expect(performance.now() - started).toBeLessThan(2000)
  })

  it('keeps a vouched link whose peer speaks again, and says so once', async () => {
    const settings = { heartbeatInterval: 50, heartbeatTimeout: 300, suspectTimeout: 60_000 }
    const server = await acceptorServer(settings, capture(), () => Promise.resolve(true))
    const { raw, link } = await rawDialer(server)
    raw.socket.pause()
    const vouched = (l: Record<string, unknown>) => /but it is still heard/.test(String(l.msg))
    await vi.waitFor(() => expect(server.logs.lines.filter(vouched)).toHaveLength(1), until)
    const received = new Promise((resolve) => link.once('message', resolve))
    raw.socket.resume()
    raw.send('back')
    expect(await received).toBe('back')
    await vi.waitFor(
      () =>
        expect(server.logs.lines.filter((l) => /is heard again after about \d+ ms/.test(String(l.msg)))).toHaveLength(
          1,
        ),
      until,
    )
    expect(link.closed).toBe(false)
  })

  it('refuses a suspectTimeout shorter than heartbeatTimeout', async () => {
    const socket = await dial(await listen(() => {}))
    const failed = Link.establish(
      socket,
      init('dialer', 'dial:1', { heartbeatInterval: 50, heartbeatTimeout: 300, suspectTimeout: 200 }),
      capture(),
    )
    await expect(failed).rejects.toThrow(/suspectTimeout must be at least heartbeatTimeout/)
  })

  it('counts any frame as liveness, not only pongs', async () => {
    const server = await acceptorServer({ heartbeatInterval: 50, heartbeatTimeout: 300 })
    const { raw, link } = await rawDialer(server)
    let count = 0
    link.on('message', () => count++)
    const timer = setInterval(() => raw.send(count), 100)
    cleanups.push(() => clearInterval(timer))
    await vi.waitFor(() => expect(count).toBeGreaterThanOrEqual(8), { timeout: 3000 })
    expect(link.closed).toBe(false)
  })

  it('does not time out a live peer because our own event loop was blocked', async () => {
    const server = await acceptorServer({ heartbeatInterval: 50, heartbeatTimeout: 300 })
    // A relay in a worker thread (a loop of its own) keeps sending frames while ours is blocked.
    const relay = new Worker(RELAY, { eval: true, workerData: { port: server.port, frame: frame('tick') } })
    cleanups.push(() => void relay.terminate())
    const [relayPort] = await once(relay, 'message')
    const raw = new RawPeer(await dial(relayPort as number))
    await raw.handshake('dialer')
    const link = await server.next()
    let ticks = 0
    link.on('message', () => ticks++)
    relay.postMessage('inject')
    await vi.waitFor(() => expect(ticks).toBeGreaterThan(0), until)
    const blockedUntil = performance.now() + 700
    while (performance.now() < blockedUntil) {} // a long GC pause or busy turn
    const before = ticks
    await vi.waitFor(() => expect(ticks).toBeGreaterThan(before + 2), until)
    expect(link.closed).toBe(false)
  })

  it('destroys only the link that received a bad frame, with one warning', async () => {
    for (const [bytes, type] of [
      [Buffer.from([0xff, 0xff, 0xff, 0xff]), FrameTooLargeError],
      [Buffer.from([0, 0, 0, 1, 0xc1]), FrameDecodeError],
    ] as const) {
      const { dialer, acceptor, server } = await linkPair()
      const raw = new RawPeer(await dial(server.port))
      await raw.handshake('dialer')
      const bad = await server.next()
      const before = server.logs.lines.length
      raw.socket.write(bytes)
      const [error] = await once(bad, 'close')
      expect(error).toBeInstanceOf(type)
      expect(server.logs.lines.slice(before)).toHaveLength(1)
      expect(server.logs.lines.at(-1)).toMatchObject({ level: 40, code: (error as { code: string }).code })
      const received = new Promise((resolve) => dialer.once('message', resolve))
      acceptor.send('still here')
      expect(await received).toBe('still here')
    }
  })

  it('closes gracefully: flushes, then one close event with undefined; the peer sees LinkClosedError', async () => {
    const { dialer, acceptor } = await linkPair()
    const dialerCloses = closeEvents(dialer)
    const acceptorCloses = closeEvents(acceptor)
    const received: unknown[] = []
    acceptor.on('message', (m) => received.push(m))
    for (let i = 0; i < 3; i++) dialer.send(i)
    dialer.close()
    expect(dialer.closed).toBe(true)
    expect(() => dialer.send('late')).toThrow(LinkClosedError)
    dialer.close()
    await once(acceptor, 'close')
    await once(dialer, 'close').catch(() => {})
    await vi.waitFor(() => expect(dialerCloses).toEqual([undefined]), until)
    dialer.close()
    dialer.destroy(new Error('after'))
    await new Promise((resolve) => setImmediate(resolve))
    expect(received).toEqual([0, 1, 2])
    expect(dialerCloses).toEqual([undefined])
    expect(acceptorCloses).toHaveLength(1)
    expect(acceptorCloses[0]).toBeInstanceOf(LinkClosedError)
  })

  it('destroys at once: one close event with the error, and the peer sees LinkClosedError', async () => {
    const { dialer, acceptor } = await linkPair()
    const dialerCloses = closeEvents(dialer)
    const acceptorCloses = closeEvents(acceptor)
    const boom = new Error('boom')
    dialer.destroy(boom)
    expect(dialerCloses).toEqual([boom])
    dialer.destroy(new Error('again'))
    dialer.close()
    await vi.waitFor(() => expect(acceptorCloses).toHaveLength(1), until)
    expect(acceptorCloses[0]).toBeInstanceOf(LinkClosedError)
    await new Promise((resolve) => setImmediate(resolve))
    expect(dialerCloses).toEqual([boom])
    expect(() => dialer.send(1)).toThrow(LinkClosedError)
  })
})

describe('Link over TLS', () => {
  async function tlsServer() {
    const results: Array<Promise<Link>> = []
    const server = tls.createServer(tlsServerOptions(secret, 'test'))
    const clientErrors: Error[] = []
    server.on('tlsClientError', (error: Error) => clientErrors.push(error))
    const port = await listen((socket) => {
      results.push(Link.establish(socket, init('acceptor', 'acc:1'), capture()))
    }, server)
    return { port, results, clientErrors }
  }

  function tlsDial(port: number, key: Uint8Array, cluster = 'test'): tls.TLSSocket {
    const socket = tls.connect({ host: '127.0.0.1', port, ...tlsConnectOptions(key, cluster) })
    cleanups.push(() => socket.destroy())
    return socket
  }

  it('links over TLS 1.3 with the PSK and carries messages', async () => {
    const { port, results } = await tlsServer()
    const socket = tlsDial(port, secret)
    await once(socket, 'secureConnect')
    expect(socket.getProtocol()).toBe('TLSv1.3')
    expect(socket.getCipher().name).toBe('TLS_AES_128_GCM_SHA256')
    const dialer = await Link.establish(socket, init('dialer', 'dial:1'), capture())
    cleanups.push(() => dialer.destroy())
    await vi.waitFor(() => expect(results).toHaveLength(1), until)
    const acceptor = await (results[0] as Promise<Link>)
    cleanups.push(() => acceptor.destroy())
    const received = new Promise((resolve) => acceptor.once('message', resolve))
    dialer.send({ over: 'tls' })
    expect(await received).toEqual({ over: 'tls' })
  })

  it('fails the TLS handshake for a client with another secret or cluster', async () => {
    const { port, results, clientErrors } = await tlsServer()
    for (const [key, cluster] of [
      [Buffer.from('wrong'), 'test'],
      [secret, 'other'],
    ] as const) {
      const socket = tlsDial(port, key, cluster)
      let secured = false
      socket.on('secureConnect', () => (secured = true))
      const [error] = await once(socket, 'error').catch((e: unknown) => [e])
      expect(error).toBeInstanceOf(Error)
      expect(secured).toBe(false)
    }
    await vi.waitFor(() => expect(clientErrors).toHaveLength(2), until)
    expect(results).toHaveLength(0)
  })
})
