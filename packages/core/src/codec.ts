import { Packr, Unpackr } from 'msgpackr'
import { EncodeError, FrameDecodeError, FrameTooLargeError } from './errors.js'
import { FRAME_HEADER_BYTES, FrameDecoder, writeFrameHeader } from './frame-decoder.js'

/**
 * Where a codec writes the bytes of outgoing values: a batch buffer that goes out in one
 * socket write. `reserve(n)` guarantees `n` free bytes at `length` (read `length` after it);
 * `commit(n)` keeps them.
 */
export interface ByteSink {
  readonly length: number
  reserve(n: number): Uint8Array
  commit(n: number): void
}

/** Turns a byte stream into values. One per connection; it keeps the partial input. */
export interface StreamDecoder {
  /**
   * Feeds one chunk and passes every value it completes to `deliver`, in order, until
   * `deliver` returns false. Throws a `WmeshError` on bad input.
   */
  decode(chunk: Uint8Array, deliver: (value: unknown) => boolean): void
  /**
   * Bytes held of a message begun but not yet complete (0 or absent: none). A connection
   * gives such a message `frameTimeout` to arrive whole.
   */
  readonly pendingBytes?: number
}

/** How values become bytes on one connection and back. */
export interface Codec {
  readonly name: string
  /**
   * Appends the wire form of `value` (frame header included, if the codec has one) to
   * `out`. Throws `EncodeError` or `FrameTooLargeError` and appends nothing when it cannot.
   */
  write(value: unknown, out: ByteSink, maxFrameSize: number): void
  createDecoder(options: { maxFrameSize: number }): StreamDecoder
}

/** Codec names accepted by `connect` and `startServer`. */
export type CodecName = 'msgpack' | 'raw'

/**
 * Plain MessagePack with no msgpackr-only extensions, so any MessagePack library can read
 * what wmesh writes: no records, no structured-clone references, `undefined` as nil,
 * maps sized by their content. Dates use the standard timestamp extension.
 */
const packr = new Packr({
  useRecords: false,
  structuredClone: false,
  moreTypes: false,
  variableMapSize: true,
  encodeUndefinedAsNil: true,
})
/** msgpackr flags: return its scratch buffer (start/end set) and reuse it on the next call. */
const SCRATCH_MODE = 512 | 1024

/**
 * Decoding untrusted bytes: references off (a hostile peer could build cycles), 64-bit
 * integers as numbers when they are safe integers and as BigInt beyond (exact either way),
 * maps as plain objects.
 */
const unpackr = new Unpackr({
  useRecords: false,
  structuredClone: false,
  mapsAsObjects: true,
  // msgpackr supports 'auto' but its typings (2.1) list only number/bigint/string.
  int64AsType: 'auto' as 'bigint',
})

/** msgpackr error messages quote the decoded input; keep only the description. */
function describeFailure(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error)
  const cut = message.search(/[{["]/)
  const text = (cut > 0 ? message.slice(0, cut) : message).replace(/[^\x20-\x7e]/g, '?').trim()
  return text.length > 120 ? `${text.slice(0, 120)}...` : text
}

const range = { start: 0, end: 0 }
/** The first value `unpackMultiple` read, and where it ended (see `unpackRange`). */
let firstValue: unknown
let firstEnd = 0
const takeFirst = (value: unknown, _start?: number, end?: number): false => {
  firstValue = value
  firstEnd = end ?? -1
  return false
}
/**
 * Frames up to this size are decoded in place; larger ones through `unpackMultiple`. In
 * place is ~1.5x faster per small frame (msgpackr makes a DataView per new buffer, and a
 * frame view would be one), but `unpack` reports bytes left over by quoting the whole value
 * through JSON.stringify: for a frame of 16 MiB a peer could hold the thread for seconds.
 * Quoting a frame of this size costs well under a millisecond.
 */
const IN_PLACE_MAX = 1024

/**
 * Decodes `source[start..end)`, which must hold exactly one MessagePack value. `mayHoldC1`
 * says the bytes may contain 0xc1 (callers scan whole chunks once, not every frame).
 */
function unpackRange(source: Uint8Array, start: number, end: number, mayHoldC1: boolean): unknown {
  let value: unknown
  try {
    value = end - start <= IN_PLACE_MAX ? unpackInPlace(source, start, end) : unpackFirst(source, start, end)
  } catch (error) {
    if (error instanceof FrameDecodeError) throw error
    throw new FrameDecodeError(
      `frame of ${end - start} bytes is not one valid MessagePack value: ${describeFailure(error)}`,
    )
  }
  // 0xc1 is "never used" in the MessagePack spec, but msgpackr decodes it to a marker object.
  // The walk runs only when the byte occurs at all in the bytes the frame came from.
  if (mayHoldC1 && holdsReserved(value)) {
    throw new FrameDecodeError('frame holds the reserved MessagePack byte 0xc1')
  }
  return value
}

function unpackInPlace(source: Uint8Array, start: number, end: number): unknown {
  range.start = start
  range.end = end
  return unpackr.unpack(source, range)
}

/** The value at the start of `source[start..end)`; bytes left after it are a bad frame. */
function unpackFirst(source: Uint8Array, start: number, end: number): unknown {
  const bytes = source.subarray(start, end)
  firstEnd = -1
  unpackr.unpackMultiple(bytes, takeFirst)
  const value = firstValue
  firstValue = undefined
  if (firstEnd !== bytes.length) {
    throw new FrameDecodeError(
      `frame of ${bytes.length} bytes is not one valid MessagePack value: ${bytes.length - firstEnd} bytes after the value`,
    )
  }
  return value
}

/**
 * True if msgpackr's marker for 0xc1 appears anywhere in a decoded value. Iterative: a
 * value nested deeper than the stack allows must be refused as a bad frame, not a RangeError.
 */
function holdsReserved(root: unknown): boolean {
  const stack: unknown[] = [root]
  while (stack.length > 0) {
    const value = stack.pop()
    if (value === null || typeof value !== 'object') continue
    if (value.constructor?.name === 'C1Type') return true
    if (value instanceof Uint8Array || value instanceof Date) continue
    for (const item of Array.isArray(value) ? value : Object.values(value)) stack.push(item)
  }
  return false
}

/** Decodes one frame payload that must hold exactly one MessagePack value. */
export function unpackFrame(payload: Uint8Array): unknown {
  // bin values come back as views of the source: keep them Buffers even when the bytes
  // arrived as a plain Uint8Array (through postMessage, say).
  const source = Buffer.isBuffer(payload)
    ? payload
    : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
  return unpackRange(source, 0, source.length, source.includes(0xc1))
}

/** Encodes one value as a MessagePack payload (without the frame header). */
export function packValue(value: unknown): Uint8Array {
  try {
    return packr.pack(value)
  } catch (error) {
    throw new EncodeError(`value cannot be encoded as MessagePack: ${describeFailure(error)}`, { cause: error })
  }
}

/** Bytes of the MessagePack header for a bin (0xc4-0xc6) or str (0xd9-0xdb, fixstr) of `n` bytes. */
function headerBytes(n: number, str: boolean): number {
  if (str && n < 32) return 1
  return n < 0x100 ? 2 : n < 0x10000 ? 3 : 5
}

function writeSizedHeader(buf: Uint8Array, at: number, n: number, str: boolean): void {
  if (str && n < 32) {
    buf[at] = 0xa0 | n
  } else if (n < 0x100) {
    buf[at] = str ? 0xd9 : 0xc4
    buf[at + 1] = n
  } else if (n < 0x10000) {
    buf[at] = str ? 0xda : 0xc5
    buf[at + 1] = n >>> 8
    buf[at + 2] = n & 0xff
  } else {
    buf[at] = str ? 0xdb : 0xc6
    writeFrameHeader(buf, at + 1, n)
  }
}

/** Strings up to this many UTF-16 units take the direct path (at most 3x bytes in UTF-8). */
const DIRECT_STRING_MAX = 0x5000

/**
 * Writes one frame. Bytes and strings, the commonest payloads, are framed here directly
 * (the same bytes msgpackr would produce); msgpackr's generic type dispatch costs several
 * times more for them. Anything else goes through msgpackr's scratch buffer and is copied
 * once into the batch.
 */
function writeMsgpackFrame(value: unknown, out: ByteSink, maxFrameSize: number): void {
  if (value instanceof Uint8Array) {
    const n = value.length
    const payload = headerBytes(n, false) + n
    if (payload > maxFrameSize) throw new FrameTooLargeError(payload, maxFrameSize)
    const buf = out.reserve(FRAME_HEADER_BYTES + payload)
    const at = out.length
    writeFrameHeader(buf, at, payload)
    writeSizedHeader(buf, at + FRAME_HEADER_BYTES, n, false)
    buf.set(value, at + FRAME_HEADER_BYTES + payload - n)
    out.commit(FRAME_HEADER_BYTES + payload)
    return
  }
  if (typeof value === 'string' && value.length <= DIRECT_STRING_MAX) {
    const n = Buffer.byteLength(value, 'utf8')
    const payload = headerBytes(n, true) + n
    if (payload > maxFrameSize) throw new FrameTooLargeError(payload, maxFrameSize)
    const buf = out.reserve(FRAME_HEADER_BYTES + payload) as Buffer
    const at = out.length
    writeFrameHeader(buf, at, payload)
    writeSizedHeader(buf, at + FRAME_HEADER_BYTES, n, true)
    buf.write(value, at + FRAME_HEADER_BYTES + payload - n, n, 'utf8')
    out.commit(FRAME_HEADER_BYTES + payload)
    return
  }
  if (Array.isArray(value) && value.length <= TUPLE_MAX && isPlainTuple(value)) {
    writeTupleFrame(value, out, maxFrameSize)
    return
  }
  let scratch: Buffer & { start: number; end: number }
  try {
    scratch = packr.pack(value, SCRATCH_MODE) as Buffer & { start: number; end: number }
  } catch (error) {
    throw new EncodeError(`value cannot be encoded as MessagePack: ${describeFailure(error)}`, { cause: error })
  }
  const payload = scratch.end - scratch.start
  if (payload > maxFrameSize) throw new FrameTooLargeError(payload, maxFrameSize)
  const buf = out.reserve(FRAME_HEADER_BYTES + payload)
  const at = out.length
  writeFrameHeader(buf, at, payload)
  scratch.copy(buf, at + FRAME_HEADER_BYTES, scratch.start, scratch.end)
  out.commit(FRAME_HEADER_BYTES + payload)
}

/** Arrays up to this length (a fixarray) of plain scalars are framed here too. */
const TUPLE_MAX = 15

/** What `writeTupleFrame` encodes itself: bytes, short strings, small whole numbers, booleans, null. */
function isPlainScalar(v: unknown): boolean {
  return (
    v instanceof Uint8Array ||
    (typeof v === 'string' && v.length <= DIRECT_STRING_MAX) ||
    (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff) ||
    typeof v === 'boolean' ||
    v === null
  )
}

/** Every slot a plain scalar; a hole (sparse array) is not, and goes the generic way. */
function isPlainTuple(items: unknown[]): boolean {
  for (let i = 0; i < items.length; i++) if (!isPlainScalar(items[i])) return false
  return true
}

function uintBytes(n: number): number {
  return n < 0x80 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5
}

/**
 * Frames a short array of plain scalars, the shape of mesh envelopes such as
 * `[CAST, method, bytes]`, with the same bytes msgpackr writes but without its generic
 * dispatch and the copy out of its scratch buffer (together half the cost of a small cast).
 */
function writeTupleFrame(items: unknown[], out: ByteSink, maxFrameSize: number): void {
  let payload = 1
  const lengths: number[] = []
  for (const v of items) {
    if (v instanceof Uint8Array) payload += headerBytes(v.length, false) + v.length
    else if (typeof v === 'string') {
      const n = Buffer.byteLength(v, 'utf8')
      lengths.push(n)
      payload += headerBytes(n, true) + n
    } else if (typeof v === 'number') payload += uintBytes(v)
    else payload += 1
  }
  if (payload > maxFrameSize) throw new FrameTooLargeError(payload, maxFrameSize)
  const buf = out.reserve(FRAME_HEADER_BYTES + payload) as Buffer
  const start = out.length
  writeFrameHeader(buf, start, payload)
  let at = start + FRAME_HEADER_BYTES
  buf[at++] = 0x90 | items.length
  let nextString = 0
  for (const v of items) {
    if (v instanceof Uint8Array) {
      writeSizedHeader(buf, at, v.length, false)
      at += headerBytes(v.length, false)
      buf.set(v, at)
      at += v.length
    } else if (typeof v === 'string') {
      const n = lengths[nextString++] as number
      writeSizedHeader(buf, at, n, true)
      at += headerBytes(n, true)
      at += buf.write(v, at, n, 'utf8')
    } else if (typeof v === 'number') {
      if (v < 0x80) buf[at++] = v
      else if (v < 0x100) {
        buf[at++] = 0xcc
        buf[at++] = v
      } else if (v < 0x10000) {
        buf[at++] = 0xcd
        buf.writeUInt16BE(v, at)
        at += 2
      } else {
        buf[at++] = 0xce
        buf.writeUInt32BE(v, at)
        at += 4
      }
    } else buf[at++] = v === null ? 0xc0 : v ? 0xc3 : 0xc2
  }
  out.commit(FRAME_HEADER_BYTES + payload)
}

/** The default codec: each value is one length-prefixed MessagePack frame. */
export const msgpackCodec: Codec = {
  name: 'msgpack',
  write: writeMsgpackFrame,
  createDecoder({ maxFrameSize }) {
    const frames = new FrameDecoder({ maxFrameSize })
    /** Some buffered chunk contains 0xc1: frames from it need the marker check. */
    let mayHoldC1 = false
    return {
      decode(chunk, deliver) {
        if (!mayHoldC1 && chunk.includes(0xc1)) mayHoldC1 = true
        frames.push(chunk)
        while (frames.nextFrame()) {
          const value = unpackRange(frames.frameSource as Uint8Array, frames.frameStart, frames.frameEnd, mayHoldC1)
          if (!deliver(value)) return
        }
        if (frames.bufferedBytes === 0) mayHoldC1 = false
      },
      get pendingBytes() {
        return frames.pendingBytes
      },
    }
  },
}

/**
 * Bytes as they arrive, for talking to servers that are not wmesh. `receiveData` gets a
 * `Buffer` per read; `sendData` takes a `string` (UTF-8) or bytes.
 */
export const rawCodec: Codec = {
  name: 'raw',
  write(value, out, maxFrameSize) {
    let bytes: Uint8Array
    if (typeof value === 'string') bytes = Buffer.from(value, 'utf8')
    else if (value instanceof Uint8Array) bytes = value
    else throw new EncodeError(`the raw codec sends strings and bytes, got ${value === null ? 'null' : typeof value}`)
    // One sendData is one "frame" here too: the same cap on what a single call may queue.
    if (bytes.length > maxFrameSize) throw new FrameTooLargeError(bytes.length, maxFrameSize)
    const buf = out.reserve(bytes.length)
    buf.set(bytes, out.length)
    out.commit(bytes.length)
  },
  createDecoder() {
    return {
      decode(chunk, deliver) {
        deliver(chunk)
      },
    }
  },
}

/** Resolves a codec option to a codec. */
export function resolveCodec(codec: CodecName | Codec | undefined): Codec {
  if (codec === undefined || codec === 'msgpack') return msgpackCodec
  if (codec === 'raw') return rawCodec
  if (typeof codec === 'object' && codec !== null && typeof codec.write === 'function') return codec
  throw new TypeError(`unknown codec ${JSON.stringify(codec)}; use 'msgpack', 'raw' or a Codec object`)
}
