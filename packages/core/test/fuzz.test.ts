import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { DEFAULT_MAX_FRAME_SIZE, msgpackCodec, packValue, WmeshError } from '../src/index.js'

/** Runs scale with WMESH_FUZZ_SCALE (default 1 in CI; e.g. 100 for a long local run). */
const runs = (n: number) => Math.max(1, Math.round(n * Number(process.env.WMESH_FUZZ_SCALE ?? 1)))

function frame(payload: Uint8Array): Buffer {
  const header = Buffer.alloc(4)
  header.writeUInt32BE(payload.length)
  return Buffer.concat([header, payload])
}

/** Feeds `chunks` to a fresh msgpack stream decoder; returns the values or the error it threw. */
function decodeStream(chunks: Uint8Array[]): { values: unknown[]; error: unknown } {
  const decoder = msgpackCodec.createDecoder({ maxFrameSize: 64 * 1024 })
  const values: unknown[] = []
  try {
    for (const chunk of chunks) {
      decoder.decode(chunk, (value) => {
        values.push(value)
        return true
      })
    }
    return { values, error: undefined }
  } catch (error) {
    return { values, error }
  }
}

describe('fuzzing the msgpack stream decoder', () => {
  it('random bytes only ever yield values or a WmeshError, never another exception', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }), (chunks) => {
        const { error } = decodeStream(chunks)
        if (error !== undefined) expect(error).toBeInstanceOf(WmeshError)
      }),
      { numRuns: runs(2000) },
    )
  })

  it('a valid stream with random bytes flipped decodes, or fails with a WmeshError, and never yields more frames', () => {
    const value = fc.oneof(
      fc.string(),
      fc.integer(),
      fc.double({ noNaN: true }),
      fc.boolean(),
      fc.constant(null),
      fc.uint8Array({ maxLength: 50 }),
      fc.array(fc.oneof(fc.string(), fc.integer()), { maxLength: 10 }),
      fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.string(), fc.integer()), { maxKeys: 8 }),
    )
    fc.assert(
      fc.property(
        fc.array(value, { minLength: 1, maxLength: 10 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
        (values, flips) => {
          const bytes = Buffer.concat(values.map((v) => frame(packValue(v))))
          for (const [at, byte] of flips) bytes[at % bytes.length] = byte
          const { values: out, error } = decodeStream([bytes])
          if (error !== undefined) expect(error).toBeInstanceOf(WmeshError)
          // A flipped length can merge or split frames, but never invent bytes beyond the input.
          expect(out.length).toBeLessThanOrEqual(bytes.length / 5)
        },
      ),
      { numRuns: runs(2000) },
    )
  })

  it('a length header above the limit fails before the payload arrives, whatever the limit', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: DEFAULT_MAX_FRAME_SIZE }), fc.nat({ max: 1000 }), (limit, over) => {
        const decoder = msgpackCodec.createDecoder({ maxFrameSize: limit })
        const header = Buffer.alloc(4)
        header.writeUInt32BE(Math.min(0xffffffff, limit + 1 + over))
        expect(() => decoder.decode(header, () => true)).toThrow(WmeshError)
      }),
      { numRuns: runs(500) },
    )
  })
})
