import { once } from 'node:events'
import { connect as netConnect, type Socket } from 'node:net'
import { describe, expect, it } from 'vitest'
import {
  EmptyFrameError,
  FrameDecodeError,
  FrameTooLargeError,
  Handler,
  startWorker,
  Worker,
  WriteQueueFullError,
} from '../src/index.js'
import { deferred, memoryLogger } from './helpers.js'

class Plain extends Worker {}

/** A server handler that echoes every value back. */
class Echo extends Handler {
  override receiveData(data: unknown) {
    this.sendData(data)
  }
}

/** Collects what a client receives and lets a test await the n-th value. */
class Collector extends Handler {
  received: unknown[] = []
  waiters: Array<{ n: number; resolve: () => void }> = []
  closed = deferred<Error | undefined>()
  override receiveData(data: unknown) {
    this.received.push(data)
    for (const w of this.waiters) if (this.received.length >= w.n) w.resolve()
  }
  override unbind(reason?: Error) {
    this.closed.resolve(reason)
  }
  receivedCount(n: number): Promise<void> {
    if (this.received.length >= n) return Promise.resolve()
    return new Promise((resolve) => this.waiters.push({ n, resolve }))
  }
}

async function rawSocket(port: number, host = '127.0.0.1'): Promise<Socket> {
  const socket = netConnect({ host, port })
  await once(socket, 'connect')
  return socket
}

function header(length: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(length)
  return b
}

describe('sendData and receiveData', () => {
  it('round-trips a value of every MessagePack type through a msgpack server', async () => {
    const values: unknown[] = [
      null,
      true,
      false,
      0,
      127,
      128,
      255,
      65535,
      4294967295,
      -1,
      -32,
      -33,
      -2147483648,
      9007199254740991,
      2n ** 63n - 1n,
      -(2n ** 63n),
      2n ** 64n - 1n,
      1.5,
      -0.25,
      Number.MAX_VALUE,
      '',
      'x',
      'a'.repeat(31),
      'b'.repeat(32),
      'c'.repeat(300),
      'd'.repeat(70_000),
      'héllo wörld ✓',
      Buffer.from([]),
      Buffer.from([1, 2, 3]),
      Buffer.alloc(300, 4),
      Buffer.alloc(70_000, 5),
      [],
      [1, 'two', [3]],
      Array.from({ length: 20 }, (_, i) => i),
      Array.from({ length: 70_000 }, (_, i) => i % 10),
      {},
      { a: 1, b: { c: [true, null] } },
      Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i])),
      new Date(1_700_000_000_123),
    ]
    await using handle = await startWorker(Plain, undefined, { logger: memoryLogger().logger })
    const server = await handle.worker.startServer('127.0.0.1', 0, Echo)
    const client = await handle.worker.connect('127.0.0.1', server.port, Collector)
    for (const v of values) client.sendData(v)
    await client.receivedCount(values.length)
    expect(client.received).toEqual(values)
  })

  it('round-trips raw bytes unchanged with the raw codec', async () => {
    const chunks: Buffer[] = []
    const all = deferred()
    const total = 256 * 1024
    class RawSink extends Handler {
      size = 0
      override receiveData(data: unknown) {
        chunks.push(data as Buffer)
        this.size += (data as Buffer).length
        if (this.size >= total) all.resolve()
      }
    }
    await using handle = await startWorker(Plain, undefined, { logger: memoryLogger().logger })
    const server = await handle.worker.startServer('127.0.0.1', 0, RawSink, undefined, { codec: 'raw' })
    const client = await handle.worker.connect('127.0.0.1', server.port, Handler, undefined, { codec: 'raw' })
    const bytes = Buffer.alloc(total)
    for (let i = 0; i < total; i++) bytes[i] = (i * 7 + 3) & 0xff
    client.sendData(bytes.subarray(0, 1000))
    client.sendData(bytes.subarray(1000))
    await all.promise
    expect(Buffer.concat(chunks).equals(bytes)).toBe(true)
    expect(chunks.every((c) => Buffer.isBuffer(c))).toBe(true)
  })

  it('works over IPv6 loopback', async () => {
    await using handle = await startWorker(Plain, undefined, { logger: memoryLogger().logger })
    const server = await handle.worker.startServer('::1', 0, Echo)
    const client = await handle.worker.connect('::1', server.port, Collector)
    client.sendData({ over: 'v6' })
    await client.receivedCount(1)
    expect(client.received).toEqual([{ over: 'v6' }])
    expect(client.peer.family).toBe('IPv6')
  })

  it('refuses to send a value larger than maxFrameSize, before it reaches the wire', async () => {
    await using handle = await startWorker(Plain, undefined, { logger: memoryLogger().logger })
    const server = await handle.worker.startServer('127.0.0.1', 0, Echo)
    const client = await handle.worker.connect('127.0.0.1', server.port, Collector, undefined, { maxFrameSize: 100 })
    expect(() => client.sendData('x'.repeat(200))).toThrow(FrameTooLargeError)
    client.sendData('fits')
    await client.receivedCount(1)
    expect(client.received).toEqual(['fits'])
  })
})

describe('bad input on a msgpack server', () => {
  const cases: Array<[string, Buffer, new (...args: never[]) => Error]> = [
    ['an oversize length', header(64 * 1024 + 1), FrameTooLargeError],
    ['a zero length', header(0), EmptyFrameError],
    ['garbage that is not MessagePack', Buffer.concat([header(3), Buffer.from([0xc1, 0xc1, 0xc1])]), FrameDecodeError],
    ['a frame holding two values', Buffer.concat([header(2), Buffer.from([0x01, 0x02])]), FrameDecodeError],
    ['a truncated value', Buffer.concat([header(2), Buffer.from([0x92, 0x01])]), FrameDecodeError],
    ['the reserved byte 0xc1 inside an array', Buffer.concat([header(2), Buffer.from([0x91, 0xc1])]), FrameDecodeError],
  ]
  for (const [what, bytes, ErrorClass] of cases) {
    it(`closes only the connection that sent ${what}, logs it once, and keeps serving the others`, async () => {
      const { logger, lines } = memoryLogger()
      const serverReasons: Array<Error | undefined> = []
      const badClosed = deferred()
      class Guarded extends Echo {
        override unbind(reason?: Error) {
          serverReasons.push(reason)
          badClosed.resolve()
        }
      }
      await using handle = await startWorker(Plain, undefined, { logger })
      const server = await handle.worker.startServer('127.0.0.1', 0, Guarded, undefined, { maxFrameSize: 64 * 1024 })
      const good = await handle.worker.connect('127.0.0.1', server.port, Collector)
      good.sendData('before')
      await good.receivedCount(1)
      const bad = await rawSocket(server.port)
      bad.on('error', () => {})
      bad.write(bytes)
      await Promise.all([badClosed.promise, once(bad, 'close')])
      expect(serverReasons).toHaveLength(1)
      expect(serverReasons[0]).toBeInstanceOf(ErrorClass)
      good.sendData('after')
      await good.receivedCount(2)
      expect(good.received).toEqual(['before', 'after'])
      expect(server.connections).toBe(1)
      const logged = lines.filter((l) => l.component === 'core:connection')
      expect(logged).toHaveLength(1)
      expect(logged[0]?.code).toBe((serverReasons[0] as FrameTooLargeError).code)
    })
  }
})

describe('backpressure', () => {
  it('a slow reader makes sendData return false, and waiting for drain keeps the queue bounded', async () => {
    const highWaterMark = 64 * 1024
    await using handle = await startWorker(Plain, undefined, { logger: memoryLogger().logger })
    let serverSide: Handler | undefined
    const accepted = deferred()
    const server = await handle.worker.startServer(
      '127.0.0.1',
      0,
      Handler,
      (h) => {
        serverSide = h
        accepted.resolve()
      },
      { highWaterMark },
    )
    // The reader never reads: the kernel buffers fill, then everything stays with the sender.
    const reader = await rawSocket(server.port)
    reader.pause()
    await accepted.promise
    const sender = serverSide as Handler
    const payload = Buffer.alloc(1024, 1)
    let sawFalse = false
    let peak = 0
    const sent = { count: 0 }
    const pump = (async () => {
      for (let i = 0; i < 20_000; i++) {
        const ok = sender.sendData(payload)
        sent.count++
        peak = Math.max(peak, sender.bufferedBytes)
        if (!ok) {
          sawFalse = true
          await sender.waitForDrain()
        }
      }
    })()
    pump.catch(() => {})
    // Wait until the pump is blocked on drain (its sent count stops moving) while nobody reads.
    await new Promise<void>((resolve) => {
      let last = -1
      const check = setInterval(() => {
        if (sawFalse && sent.count === last) {
          clearInterval(check)
          resolve()
        }
        last = sent.count
      }, 50)
    })
    expect(sawFalse).toBe(true)
    expect(sent.count).toBeLessThan(20_000)
    // Bounded: the sender never held more than the high-water mark plus one batch of frames.
    expect(peak).toBeLessThan(highWaterMark + 256 * 1024 + 64 * 1024)
    reader.resume()
    await pump
    expect(sent.count).toBe(20_000)
    reader.destroy()
  })

  it('throws WriteQueueFullError instead of growing past maxQueuedBytes when drain is ignored', async () => {
    await using handle = await startWorker(Plain, undefined, { logger: memoryLogger().logger })
    const accepted = deferred<Handler>()
    const server = await handle.worker.startServer('127.0.0.1', 0, Handler, (h) => accepted.resolve(h), {
      highWaterMark: 16 * 1024,
      maxQueuedBytes: 1024 * 1024,
    })
    const reader = await rawSocket(server.port)
    reader.pause()
    const sender = await accepted.promise
    const payload = Buffer.alloc(8 * 1024)
    let error: unknown
    for (let i = 0; i < 100_000 && !error; i++) {
      try {
        sender.sendData(payload)
      } catch (e) {
        error = e
      }
      // Yield now and then so queued batches reach the socket, like a real producer would.
      if (i % 16 === 0) await new Promise((resolve) => setImmediate(resolve))
    }
    expect(error).toBeInstanceOf(WriteQueueFullError)
    expect(sender.bufferedBytes).toBeLessThanOrEqual(1024 * 1024)
    reader.destroy()
  })
})

describe('closeConnection', () => {
  it('with afterWriting delivers everything queued before closing', async () => {
    const count = 5000
    class Burst extends Handler {
      override connectionCompleted() {
        for (let i = 0; i < count; i++) this.sendData({ i, pad: 'x'.repeat(100) })
        this.closeConnection({ afterWriting: true })
      }
    }
    await using handle = await startWorker(Plain, undefined, { logger: memoryLogger().logger })
    const server = await handle.worker.startServer('127.0.0.1', 0, Burst)
    const client = await handle.worker.connect('127.0.0.1', server.port, Collector)
    expect(await client.closed.promise).toBeUndefined()
    expect(client.received).toHaveLength(count)
    expect((client.received as Array<{ i: number }>).map((v) => v.i)).toEqual(
      Array.from({ length: count }, (_, i) => i),
    )
  })

  it('without afterWriting closes at once and drops what is queued', async () => {
    class Drop extends Handler {
      override connectionCompleted() {
        for (let i = 0; i < 100; i++) this.sendData(i)
        this.closeConnection()
      }
    }
    await using handle = await startWorker(Plain, undefined, { logger: memoryLogger().logger })
    const server = await handle.worker.startServer('127.0.0.1', 0, Drop)
    const client = await handle.worker.connect('127.0.0.1', server.port, Collector)
    await client.closed.promise
    expect(client.received).toEqual([])
  })
})

describe('timers', () => {
  it('a handler timer stops when its connection ends', async () => {
    let ticks = 0
    const ticking = deferred()
    const ended = deferred()
    let timerRef: { active: boolean } | undefined
    class Ticker extends Handler {
      override postInit() {
        timerRef = this.addPeriodicTimer(5, () => {
          ticks++
          if (ticks === 3) ticking.resolve()
        })
      }
      override unbind() {
        ended.resolve()
      }
    }
    await using handle = await startWorker(Plain, undefined, { logger: memoryLogger().logger })
    const server = await handle.worker.startServer('127.0.0.1', 0, Ticker)
    const client = await handle.worker.connect('127.0.0.1', server.port, Handler)
    await ticking.promise
    client.closeConnection()
    await ended.promise
    expect(timerRef?.active).toBe(false)
    const after = ticks
    // Wait past several periods through another timer: the handler's must not fire again.
    await new Promise<void>((resolve) => handle.worker.addTimer(40, resolve))
    expect(ticks).toBe(after)
  })

  it('worker timers stop when the worker stops, and the worker closes its servers and connections', async () => {
    let ticks = 0
    const handle = await startWorker(Plain, undefined, { logger: memoryLogger().logger })
    const timer = handle.worker.addPeriodicTimer(5, () => ticks++)
    const server = await handle.worker.startServer('127.0.0.1', 0, Echo)
    const client = await handle.worker.connect('127.0.0.1', server.port, Collector)
    await handle.stop()
    expect(timer.active).toBe(false)
    expect(await client.closed.promise).toBeUndefined()
    const refused = netConnect({ host: '127.0.0.1', port: server.port })
    const [err] = (await once(refused, 'error')) as [NodeJS.ErrnoException]
    expect(err.code).toBe('ECONNREFUSED')
    const before = ticks
    await new Promise((resolve) => setTimeout(resolve, 30))
    expect(ticks).toBe(before)
    await handle.stop()
  })
})

describe('review regressions', () => {
  it('waitForDrain resolves with a high-water mark below the socket buffer once the reader catches up', async () => {
    await using handle = await startWorker(Plain, undefined, { logger: memoryLogger().logger })
    const accepted = deferred<Handler>()
    const server = await handle.worker.startServer('127.0.0.1', 0, Handler, (h) => accepted.resolve(h), {
      highWaterMark: 4096,
    })
    const reader = await rawSocket(server.port)
    reader.pause()
    const sender = await accepted.promise
    let blocked = false
    for (let i = 0; i < 100_000 && !blocked; i++) blocked = !sender.sendData(Buffer.alloc(512))
    expect(blocked).toBe(true)
    const drained = sender.waitForDrain({ timeout: 10_000 })
    reader.resume()
    await drained
    expect(sender.bufferedBytes).toBeLessThan(4096)
    reader.destroy()
  })

  it('rejects bad connection options at startServer and connect, before any socket exists', async () => {
    await using handle = await startWorker(Plain, undefined, { logger: memoryLogger().logger })
    await expect(handle.worker.startServer('127.0.0.1', 0, Handler, undefined, { maxQueuedBytes: 10 })).rejects.toThrow(
      RangeError,
    )
    const server = await handle.worker.startServer('127.0.0.1', 0, Handler)
    await expect(
      handle.worker.connect('127.0.0.1', server.port, Handler, undefined, { maxFrameSize: 0 }),
    ).rejects.toThrow(RangeError)
    expect(server.connections).toBe(0)
  })

  it('a handler constructor that throws costs only that connection', async () => {
    const { logger, lines } = memoryLogger()
    let throwNext = true
    class Picky extends Echo {
      constructor() {
        super()
        if (throwNext) {
          throwNext = false
          throw new Error('constructor refused')
        }
      }
    }
    await using handle = await startWorker(Plain, undefined, { logger })
    const server = await handle.worker.startServer('127.0.0.1', 0, Picky)
    const refused = await rawSocket(server.port)
    await once(refused, 'close')
    const client = await handle.worker.connect('127.0.0.1', server.port, Collector)
    client.sendData('ok')
    await client.receivedCount(1)
    expect(client.received).toEqual(['ok'])
    expect(lines.some((l) => String(l.msg).includes('constructor refused'))).toBe(true)
  })

  it('after closeConnection() a handler receives nothing more, even from the same chunk', async () => {
    const seen: unknown[] = []
    const ended = deferred()
    class CloseOnFirst extends Handler {
      override receiveData(data: unknown) {
        seen.push(data)
        this.closeConnection()
        expect(this.connected).toBe(false)
        expect(() => this.sendData('late')).toThrow(/cannot send/)
      }
      override unbind() {
        ended.resolve()
      }
    }
    await using handle = await startWorker(Plain, undefined, { logger: memoryLogger().logger })
    const server = await handle.worker.startServer('127.0.0.1', 0, CloseOnFirst)
    const client = await handle.worker.connect('127.0.0.1', server.port, Handler)
    client.sendData(1)
    client.sendData(2)
    client.sendData(3)
    await ended.promise
    expect(seen).toEqual([1])
  })

  it('refuses timer delays that Node would silently turn into 1 ms', async () => {
    await using handle = await startWorker(Plain, undefined, { logger: memoryLogger().logger })
    expect(() => handle.worker.addTimer(2 ** 31, () => {})).toThrow(RangeError)
    expect(() => handle.worker.addPeriodicTimer(-1, () => {})).toThrow(RangeError)
  })
})
