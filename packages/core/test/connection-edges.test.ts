import { getEventListeners, once } from 'node:events'
import { describe, expect, it, vi } from 'vitest'
import { waitWithDeadline } from '../src/deadline.js'
import { type Codec, ConnectionClosedError, Handler, msgpackCodec, startWorker, Worker } from '../src/index.js'
import { deferred, memoryLogger, rawSocket, until } from './helpers.js'

class Plain extends Worker {}

/** The msgpack codec, counting the bytes its decoder is fed once `counting` is set. */
function countingCodec(): { codec: Codec; start(): void; fed(): number } {
  let counting = false
  let fed = 0
  const codec: Codec = {
    name: 'counting-msgpack',
    write: msgpackCodec.write,
    createDecoder(options) {
      const inner = msgpackCodec.createDecoder(options)
      return {
        decode(chunk, deliver) {
          if (counting) fed += chunk.length
          inner.decode(chunk, deliver)
        },
      }
    },
  }
  return { codec, start: () => (counting = true), fed: () => fed }
}

/** One msgpack frame holding the value 0: a 4-byte length of 1, then 0x00. */
const ZERO_FRAME = Buffer.from([0, 0, 0, 1, 0])

describe('a connection that is closing', () => {
  it('drops what the peer keeps sending instead of buffering it until closeTimeout', async () => {
    const counter = countingCodec()
    const closed = deferred<Error | undefined>()
    let received = 0
    class CloseOnFirst extends Handler {
      override receiveData() {
        received++
        counter.start()
        this.closeConnection({ afterWriting: true })
      }
      override unbind(reason?: Error) {
        closed.resolve(reason)
      }
    }
    await using handle = await startWorker(Plain, undefined, { logger: memoryLogger().logger })
    const server = await handle.worker.startServer('127.0.0.1', 0, CloseOnFirst, undefined, { codec: counter.codec })
    // Half-open, so the peer can keep writing after the server's FIN.
    const peer = await rawSocket(server.port, { allowHalfOpen: true })
    peer.write(ZERO_FRAME)
    await once(peer, 'end')
    const chunk = Buffer.concat(Array<Buffer>(13_000).fill(ZERO_FRAME))
    const flood = 8 * 1024 * 1024
    for (let sent = 0; sent < flood; sent += chunk.length) {
      if (!peer.write(chunk)) await once(peer, 'drain')
    }
    // The server closes on our FIN, after reading everything before it.
    peer.end()
    expect(await closed.promise).toBeUndefined()
    expect(received).toBe(1)
    expect(counter.fed()).toBeLessThan(64 * 1024)
  })
})

describe('waitForDrain', () => {
  it('rejects with ConnectionClosedError when the peer resets the connection before the drain', async () => {
    await using handle = await startWorker(Plain, undefined, { logger: memoryLogger().logger })
    const accepted = deferred<Handler>()
    const server = await handle.worker.startServer('127.0.0.1', 0, Handler, (h) => accepted.resolve(h), {
      highWaterMark: 1024,
    })
    const reader = await rawSocket(server.port)
    reader.pause()
    const sender = await accepted.promise
    // Fill the kernel buffers, so writes are still pending in the socket when the peer goes.
    const block = Buffer.alloc(1024 * 1024)
    for (let i = 0; i < 48 && sender.bufferedBytes < 4 * block.length; i++) sender.sendData(block)
    expect(sender.bufferedBytes).toBeGreaterThan(block.length)
    const drained = sender.waitForDrain({ timeout: 10_000 })
    // Unread data in its receive buffer makes the peer's close a reset.
    reader.destroy()
    const error = await drained.then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(ConnectionClosedError)
    expect((error as ConnectionClosedError).code).toBe('ERR_CONNECTION_CLOSED')
  })
})

describe('close deadlines beyond the timer range', () => {
  it('checks closeTimeout up front: a whole number of ms up to 2147483647, or Infinity', async () => {
    await using handle = await startWorker(Plain, undefined, { logger: memoryLogger().logger })
    const server = await handle.worker.startServer('127.0.0.1', 0, Handler)
    for (const closeTimeout of [2 ** 31, 3_000_000_000, -1, 1.5, Number.NaN]) {
      await expect(handle.worker.startServer('127.0.0.1', 0, Handler, undefined, { closeTimeout })).rejects.toThrow(
        RangeError,
      )
      await expect(
        handle.worker.connect('127.0.0.1', server.port, Handler, undefined, { closeTimeout }),
      ).rejects.toThrow(/closeTimeout/)
    }
    const unlimited = await handle.worker.startServer('127.0.0.1', 0, Handler, undefined, {
      closeTimeout: Number.POSITIVE_INFINITY,
    })
    expect(unlimited.port).toBeGreaterThan(0)
    expect(server.connections).toBe(0)
  })

  it('a stop with stopTimeout Infinity still lets a slow reader take everything queued', async () => {
    const total = 32 * 1024 * 1024
    const accepted = deferred<Handler>()
    class Big extends Handler {
      override connectionCompleted() {
        for (let sent = 0; sent < total; sent += 8 * 1024 * 1024) this.sendData(Buffer.alloc(8 * 1024 * 1024, 1))
      }
    }
    const handle = await startWorker(Plain, undefined, {
      logger: memoryLogger().logger,
      stopTimeout: Number.POSITIVE_INFINITY,
    })
    const server = await handle.worker.startServer('127.0.0.1', 0, Big, (h) => accepted.resolve(h), { codec: 'raw' })
    const reader = await rawSocket(server.port)
    reader.pause()
    const sender = await accepted.promise
    expect(sender.bufferedBytes).toBeGreaterThan(0)
    const stopped = handle.stop()
    // Wait until the stop has started closing the connection: a deadline turned into 1 ms fires now.
    await until(() => !sender.connected, 5000, 'the stop to close the connection')
    let received = 0
    reader.on('data', (chunk: Buffer) => {
      received += chunk.length
    })
    reader.resume()
    await once(reader, 'close')
    await stopped
    expect(received).toBe(total)
  })
})

describe('hooks after a handler closes its connection', () => {
  it('a server handler that refuses a peer in postInit gets no accept callback and no connectionCompleted', async () => {
    const calls: string[] = []
    let sendError: unknown
    const reason = deferred<Error | undefined>()
    class Gate extends Handler {
      override postInit() {
        calls.push('postInit')
        this.closeConnection()
        try {
          this.sendData('too late')
        } catch (error) {
          sendError = error
        }
      }
      override connectionCompleted() {
        calls.push('connectionCompleted')
        this.sendData('welcome')
      }
      override unbind(r?: Error) {
        reason.resolve(r)
      }
    }
    await using handle = await startWorker(Plain, undefined, { logger: memoryLogger().logger })
    const server = await handle.worker.startServer('127.0.0.1', 0, Gate, () => calls.push('accept callback'))
    const peer = await rawSocket(server.port)
    expect(await reason.promise).toBeUndefined()
    expect(calls).toEqual(['postInit'])
    expect(sendError).toBeInstanceOf(ConnectionClosedError)
    expect((sendError as Error).message).toMatch(/is closing$/)
    peer.destroy()
  })

  it('a connect callback that closes the connection skips connectionCompleted and still resolves', async () => {
    const calls: string[] = []
    class Client extends Handler {
      override connectionCompleted() {
        calls.push('connectionCompleted')
      }
    }
    await using handle = await startWorker(Plain, undefined, { logger: memoryLogger().logger })
    const server = await handle.worker.startServer('127.0.0.1', 0, Handler)
    const client = await handle.worker.connect('127.0.0.1', server.port, Client, (h) => {
      calls.push('connect callback')
      h.closeConnection()
    })
    expect(client).toBeInstanceOf(Client)
    expect(client.connected).toBe(false)
    expect(calls).toEqual(['connect callback'])
  })
})

describe('connect', () => {
  it('rejects, rather than throws, for a port out of range', async () => {
    await using handle = await startWorker(Plain, undefined, { logger: memoryLogger().logger })
    let pending: Promise<Handler> | undefined
    expect(() => {
      pending = handle.worker.connect('127.0.0.1', 70_000, Handler)
    }).not.toThrow()
    await expect(pending).rejects.toThrow(RangeError)
  })
})

describe('waitWithDeadline', () => {
  it('keeps waiting for a timeout above what a timer can hold, instead of failing after 1 ms', async () => {
    let settle: (value: string) => void = () => {}
    const waiting = waitWithDeadline<string>('the test wait', { timeout: 3e9 }, (resolve) => {
      settle = resolve
      return () => {}
    })
    // Lets a 1 ms timer (what Node makes of 3e9 ms) fire first, if there were one.
    await new Promise((resolve) => setTimeout(resolve, 20))
    settle('settled by its event')
    expect(await waiting).toBe('settled by its event')
  })

  it('ends with what its start throws, leaving no timer and no abort listener', async () => {
    vi.useFakeTimers()
    try {
      const controller = new AbortController()
      const boom = new Error('cannot start')
      const waiting = waitWithDeadline('the test wait', { timeout: 1000, signal: controller.signal }, () => {
        throw boom
      })
      await expect(waiting).rejects.toBe(boom)
      expect(vi.getTimerCount()).toBe(0)
      expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0)
    } finally {
      vi.useRealTimers()
    }
  })
})
