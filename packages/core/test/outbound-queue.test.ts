import type { Socket } from 'node:net'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  FrameDecodeError,
  FrameDecoder,
  FrameTooLargeError,
  msgpackCodec,
  rawCodec,
  unpackFrame,
  WriteQueueFullError,
} from '../src/index.js'
import { OutboundQueue } from '../src/internal.js'

/** Records what reaches `write`, standing in for a socket whose kernel buffer takes everything. */
function fakeSocket(writableLength = 0): { socket: Socket; writes: Buffer[] } {
  const writes: Buffer[] = []
  const socket = {
    writableLength,
    write(chunk: Uint8Array) {
      writes.push(Buffer.from(chunk))
      return true
    },
  }
  return { socket: socket as unknown as Socket, writes }
}

function frames(bytes: Buffer): unknown[] {
  return [...new FrameDecoder().decode(bytes)].map(unpackFrame)
}

describe('OutboundQueue', () => {
  it('writes all frames queued in one tick with a single write', async () => {
    const { socket, writes } = fakeSocket()
    const queue = new OutboundQueue(socket)
    for (let i = 0; i < 1000; i++) msgpackCodec.write({ i }, queue, 1024)
    expect(writes).toHaveLength(0)
    await Promise.resolve()
    expect(writes).toHaveLength(1)
    const values = frames(writes[0] as Buffer)
    expect(values).toHaveLength(1000)
    expect(values[999]).toEqual({ i: 999 })
  })

  it('writes again in the next tick for frames queued later, without overwriting the first batch', async () => {
    const { socket, writes } = fakeSocket()
    const queue = new OutboundQueue(socket)
    msgpackCodec.write('a', queue, 1024)
    await Promise.resolve()
    msgpackCodec.write('b', queue, 1024)
    msgpackCodec.write(Buffer.from('c'), queue, 1024)
    await Promise.resolve()
    expect(writes.map((w) => w.length)).toEqual([6, 13])
    expect(frames(writes[0] as Buffer)).toEqual(['a'])
    expect(frames(writes[1] as Buffer)).toEqual(['b', Buffer.from('c')])
  })

  it('flushes a large batch early instead of holding it for the whole tick', () => {
    const { socket, writes } = fakeSocket()
    const queue = new OutboundQueue(socket)
    for (let i = 0; i < 10; i++) rawCodec.write(Buffer.alloc(64 * 1024), queue, 1 << 20)
    expect(writes.length).toBeGreaterThanOrEqual(2)
  })

  it('reports backpressure above the high-water mark and refuses above the hard limit', () => {
    const { socket } = fakeSocket()
    const queue = new OutboundQueue(socket, { highWaterMark: 10, maxQueuedBytes: 20 })
    rawCodec.write(Buffer.alloc(5), queue, 1 << 20)
    expect(queue.writable).toBe(true)
    rawCodec.write(Buffer.alloc(5), queue, 1 << 20)
    expect(queue.writable).toBe(false)
    rawCodec.write(Buffer.alloc(10), queue, 1 << 20)
    expect(() => rawCodec.write(Buffer.alloc(1), queue, 1 << 20)).toThrow(WriteQueueFullError)
    expect(queue.bufferedBytes).toBe(20)
  })

  it('counts bytes the socket still holds as queued', () => {
    const { socket } = fakeSocket(15)
    const queue = new OutboundQueue(socket, { highWaterMark: 10, maxQueuedBytes: 20 })
    expect(queue.writable).toBe(false)
    expect(() => rawCodec.write(Buffer.alloc(6), queue, 1 << 20)).toThrow(WriteQueueFullError)
  })
})

describe('msgpack codec', () => {
  it('frames bytes and strings exactly as msgpackr encodes them', async () => {
    const values = [
      Buffer.alloc(0),
      Buffer.alloc(255, 1),
      Buffer.alloc(256, 2),
      Buffer.alloc(65536, 3),
      '',
      'a'.repeat(31),
      'a'.repeat(32),
      'é'.repeat(200),
      'x'.repeat(70_000),
    ]
    const { socket, writes } = fakeSocket()
    const queue = new OutboundQueue(socket)
    for (const v of values) msgpackCodec.write(v, queue, 1 << 20)
    queue.flush()
    const { packValue } = await import('../src/index.js')
    const expected = Buffer.concat(
      values.map((v) => {
        const p = packValue(v)
        const h = Buffer.alloc(4)
        h.writeUInt32BE(p.length)
        return Buffer.concat([h, p])
      }),
    )
    expect(Buffer.concat(writes).equals(expected)).toBe(true)
  })

  it('frames short arrays of plain scalars exactly as msgpackr encodes them', async () => {
    const { packValue } = await import('../src/index.js')
    const scalar = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.string({ maxLength: 300 }),
      fc.string({ unit: 'grapheme', maxLength: 40 }),
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.constantFrom(0, 127, 128, 255, 256, 65535, 65536, 0xffffffff),
      fc.boolean(),
      fc.constant(null),
    )
    fc.assert(
      fc.property(fc.array(scalar, { maxLength: 15 }), (values) => {
        const { socket, writes } = fakeSocket()
        const queue = new OutboundQueue(socket)
        msgpackCodec.write(values, queue, 1 << 20)
        queue.flush()
        const p = packValue(values)
        const h = Buffer.alloc(4)
        h.writeUInt32BE(p.length)
        expect(Buffer.concat(writes).equals(Buffer.concat([h, p]))).toBe(true)
      }),
    )
  })

  it('encodes the holes of a sparse array as nil, as msgpackr does', async () => {
    const { packValue } = await import('../src/index.js')
    // biome-ignore lint/suspicious/noSparseArray: the hole is the point
    for (const values of [[1, , 3], new Array(3)]) {
      const { socket, writes } = fakeSocket()
      const queue = new OutboundQueue(socket)
      msgpackCodec.write(values, queue, 1 << 20)
      queue.flush()
      expect(Buffer.concat(writes).subarray(4)).toEqual(Buffer.from(packValue(values)))
    }
  })

  it('rejects the reserved byte 0xc1, alone or nested in a container', () => {
    expect(() => unpackFrame(Uint8Array.of(0xc1))).toThrow(FrameDecodeError)
    expect(() => unpackFrame(Uint8Array.of(0x91, 0xc1))).toThrow(FrameDecodeError)
    expect(() => unpackFrame(Uint8Array.of(0x81, 0xa1, 0x61, 0x91, 0xc1))).toThrow(FrameDecodeError)
    // The byte inside a string or bin payload is data, not the marker.
    expect(Buffer.from(unpackFrame(Uint8Array.of(0xc4, 0x01, 0xc1)) as Uint8Array)).toEqual(Buffer.from([0xc1]))
  })

  it('the raw codec refuses one sendData larger than maxFrameSize, as the msgpack codec does', () => {
    const { socket } = fakeSocket()
    const queue = new OutboundQueue(socket)
    expect(() => rawCodec.write(Buffer.alloc(1025), queue, 1024)).toThrow(FrameTooLargeError)
    expect(queue.bufferedBytes).toBe(0)
    rawCodec.write(Buffer.alloc(1024), queue, 1024)
    expect(queue.bufferedBytes).toBe(1024)
  })

  it('refuses the marker however deeply it is nested, as a bad frame and not a stack overflow', () => {
    const depth = 3000
    const nested = Buffer.alloc(depth + 1, 0x91)
    nested[depth] = 0xc1
    const thrown = (() => {
      try {
        return unpackFrame(nested)
      } catch (error) {
        return error
      }
    })()
    // msgpackr itself may refuse the depth; either way it is a FrameDecodeError.
    expect(thrown).toBeInstanceOf(FrameDecodeError)
  })

  // Quoting a 16 MiB value to report one byte too many took seconds, blocking the thread.
  it('refuses bytes left after the value at once, however large the value', { timeout: 2000 }, () => {
    const size = 16 * 1024 * 1024
    const frame = Buffer.alloc(5 + size + 1)
    frame[0] = 0xc6
    frame.writeUInt32BE(size, 1)
    expect(() => unpackFrame(frame)).toThrow(
      new FrameDecodeError(
        `frame of ${frame.length} bytes is not one valid MessagePack value: 1 bytes after the value`,
      ),
    )
    expect(() => unpackFrame(Uint8Array.of(0x01, 0x02))).toThrow(FrameDecodeError)
  })
})
