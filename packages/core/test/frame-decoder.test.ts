import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { EmptyFrameError, FrameDecoder, FrameTooLargeError } from '../src/index.js'

function frame(payload: Uint8Array): Buffer {
  const header = Buffer.alloc(4)
  header.writeUInt32BE(payload.length)
  return Buffer.concat([header, payload])
}

function decodeAll(decoder: FrameDecoder, chunks: Uint8Array[]): Buffer[] {
  const out: Buffer[] = []
  for (const chunk of chunks) for (const f of decoder.decode(chunk)) out.push(Buffer.from(f))
  return out
}

/** Splits `bytes` at the given cut points (each taken modulo the length). */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % bytes.length)))].sort((a, b) => a - b)
  const parts: Buffer[] = []
  let at = 0
  for (const p of points) {
    parts.push(bytes.subarray(at, p))
    at = p
  }
  parts.push(bytes.subarray(at))
  return parts
}

describe('FrameDecoder', () => {
  it('yields each payload of a stream of frames in order', () => {
    const payloads = [Buffer.from('a'), Buffer.from('hello'), Buffer.alloc(1000, 7)]
    const decoder = new FrameDecoder()
    expect(decodeAll(decoder, [Buffer.concat(payloads.map(frame))])).toEqual(payloads)
    expect(decoder.bufferedBytes).toBe(0)
  })

  it('decodes a stream fed one byte at a time', () => {
    const payloads = [Buffer.from('xyz'), Buffer.alloc(300, 1), Buffer.from([0])]
    const bytes = Buffer.concat(payloads.map(frame))
    const decoder = new FrameDecoder()
    const chunks = [...bytes].map((b) => Uint8Array.of(b))
    expect(decodeAll(decoder, chunks)).toEqual(payloads)
  })

  it('decodes identically however the stream is split (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 600 }), { minLength: 1, maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (payloads, cuts) => {
          const bytes = Buffer.concat(payloads.map((p) => frame(p)))
          const whole = decodeAll(new FrameDecoder(), [bytes])
          const pieces = decodeAll(new FrameDecoder(), split(bytes, cuts))
          expect(pieces).toEqual(payloads.map((p) => Buffer.from(p)))
          expect(whole).toEqual(pieces)
        },
      ),
      { numRuns: Math.max(1, Math.round(300 * Number(process.env.WMESH_FUZZ_SCALE ?? 1))) },
    )
  })

  it('rejects a length above the limit as soon as the header is complete, before buffering', () => {
    const decoder = new FrameDecoder({ maxFrameSize: 1024 })
    const header = Buffer.alloc(4)
    header.writeUInt32BE(1025)
    expect(decodeAll(decoder, [header.subarray(0, 3)])).toEqual([])
    expect(() => decodeAll(decoder, [header.subarray(3)])).toThrow(FrameTooLargeError)
    expect(decoder.bufferedBytes).toBe(0)
  })

  it('accepts a payload of exactly the limit', () => {
    const decoder = new FrameDecoder({ maxFrameSize: 16 })
    expect(decodeAll(decoder, [frame(Buffer.alloc(16, 3))])).toEqual([Buffer.alloc(16, 3)])
  })

  it('rejects the largest possible header without allocating for it', () => {
    const decoder = new FrameDecoder()
    const before = process.memoryUsage().arrayBuffers
    expect(() => decodeAll(decoder, [Buffer.from([0xff, 0xff, 0xff, 0xff])])).toThrow(FrameTooLargeError)
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(1024 * 1024)
  })

  it('rejects a zero-length frame', () => {
    expect(() => decodeAll(new FrameDecoder(), [Buffer.alloc(4)])).toThrow(EmptyFrameError)
  })

  it('keeps failing after an error instead of resynchronising on garbage', () => {
    const decoder = new FrameDecoder()
    expect(() => decodeAll(decoder, [Buffer.alloc(4)])).toThrow(EmptyFrameError)
    expect(() => decodeAll(decoder, [frame(Buffer.from('ok'))])).toThrow(EmptyFrameError)
  })

  it('does not re-concatenate: many small chunks of one large frame cost linear time', () => {
    const payload = Buffer.alloc(4 * 1024 * 1024, 9)
    const bytes = frame(payload)
    const chunks: Buffer[] = []
    for (let at = 0; at < bytes.length; at += 64) chunks.push(bytes.subarray(at, at + 64))
    const decoder = new FrameDecoder()
    const out = decodeAll(decoder, chunks)
    expect(out).toHaveLength(1)
    expect(out[0]?.equals(payload)).toBe(true)
  })

  it('refuses a limit that the 32-bit header cannot express', () => {
    expect(() => new FrameDecoder({ maxFrameSize: 0 })).toThrow(RangeError)
    expect(() => new FrameDecoder({ maxFrameSize: 2 ** 32 })).toThrow(RangeError)
  })
})
