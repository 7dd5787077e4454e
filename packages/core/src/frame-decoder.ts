import { EmptyFrameError, FrameTooLargeError } from './errors.js'

/** Bytes in a frame header: an unsigned 32-bit big-endian payload length. */
export const FRAME_HEADER_BYTES = 4

/** Default upper bound for one frame's payload: 16 MiB. */
export const DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024

export interface FrameDecoderInit {
  /** Largest payload accepted, in bytes. A larger header fails before anything is buffered for it. */
  maxFrameSize?: number
}

/**
 * Splits a byte stream into length-prefixed frames (4-byte big-endian length, then that
 * many bytes). It does no I/O and never trusts a length: the limit is checked the moment
 * a header is complete, nothing is allocated from a header, chunks are kept in a list
 * rather than concatenated, and each frame is copied at most once (not at all when it
 * lies inside one chunk).
 *
 * After it throws, the stream is unrecoverable and every later call throws the same error.
 */
export class FrameDecoder {
  readonly maxFrameSize: number
  #chunks: Uint8Array[] = []
  /** Read position inside `#chunks[0]`. */
  #offset = 0
  /** Unconsumed bytes across all chunks. */
  #buffered = 0
  /** Payload length of the frame being assembled, or -1 while waiting for a header. */
  #need = -1
  #failure: Error | undefined

  constructor(init: FrameDecoderInit = {}) {
    const max = init.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE
    if (!Number.isInteger(max) || max < 1 || max > 0xffffffff) {
      throw new RangeError(`maxFrameSize must be an integer between 1 and ${0xffffffff}, got ${max}`)
    }
    this.maxFrameSize = max
  }

  /** Bytes received but not yet returned as part of a frame. */
  get bufferedBytes(): number {
    return this.#buffered
  }

  /** Bytes of a frame begun but not complete, its header included once read (0: none). */
  get pendingBytes(): number {
    return this.#need < 0 ? this.#buffered : this.#buffered + FRAME_HEADER_BYTES
  }

  /** Feeds one chunk and yields every frame payload it completes, in order. */
  *decode(chunk: Uint8Array): Generator<Uint8Array, void, undefined> {
    this.push(chunk)
    while (this.nextFrame()) yield (this.frameSource as Uint8Array).subarray(this.frameStart, this.frameEnd)
  }

  /**
   * The allocation-free form of `decode`: `push` a chunk, then call `nextFrame()` until
   * it returns false; after each true, the payload is `frameSource[frameStart..frameEnd)`.
   * The view is valid until the next call.
   */
  push(chunk: Uint8Array): void {
    if (this.#failure) throw this.#failure
    if (chunk.length === 0) return
    this.#chunks.push(chunk)
    this.#buffered += chunk.length
  }

  /** Source, start and end of the payload found by the last successful `nextFrame()`. */
  frameSource: Uint8Array | undefined
  frameStart = 0
  frameEnd = 0

  /** Finds the next complete frame; false when more bytes are needed. Throws on a bad header. */
  nextFrame(): boolean {
    if (this.#failure) throw this.#failure
    if (this.#need < 0) {
      if (this.#buffered < FRAME_HEADER_BYTES) return false
      const length = this.#readHeader()
      if (length === 0) throw this.#fail(new EmptyFrameError())
      if (length > this.maxFrameSize) throw this.#fail(new FrameTooLargeError(length, this.maxFrameSize))
      this.#need = length
    }
    if (this.#buffered < this.#need) return false
    const n = this.#need
    this.#need = -1
    const first = this.#chunks[0] as Uint8Array
    const at = this.#offset
    if (first.length - at >= n) {
      // The common case: the payload lies inside one chunk, so it is not copied at all.
      this.frameSource = first
      this.frameStart = at
      this.frameEnd = at + n
      this.#advance(n)
    } else {
      this.frameSource = this.#take(n)
      this.frameStart = 0
      this.frameEnd = n
    }
    return true
  }

  #fail(error: Error): Error {
    this.#failure = error
    this.#chunks = []
    this.#buffered = 0
    return error
  }

  #readHeader(): number {
    const first = this.#chunks[0] as Uint8Array
    const at = this.#offset
    if (first.length - at >= FRAME_HEADER_BYTES) {
      const length =
        (first[at] as number) * 0x1000000 +
        (((first[at + 1] as number) << 16) | ((first[at + 2] as number) << 8) | (first[at + 3] as number))
      this.#advance(FRAME_HEADER_BYTES)
      return length
    }
    const header = this.#take(FRAME_HEADER_BYTES)
    return (
      (header[0] as number) * 0x1000000 +
      (((header[1] as number) << 16) | ((header[2] as number) << 8) | (header[3] as number))
    )
  }

  /** Removes `n` bytes from the front; a view when they lie in one chunk, else one copy. */
  #take(n: number): Uint8Array {
    const first = this.#chunks[0] as Uint8Array
    const at = this.#offset
    if (first.length - at >= n) {
      const view = first.subarray(at, at + n)
      this.#advance(n)
      return view
    }
    const out = Buffer.allocUnsafe(n)
    let filled = 0
    while (filled < n) {
      const chunk = this.#chunks[0] as Uint8Array
      const available = chunk.length - this.#offset
      const count = Math.min(available, n - filled)
      out.set(chunk.subarray(this.#offset, this.#offset + count), filled)
      filled += count
      this.#advance(count)
    }
    return out
  }

  #advance(n: number): void {
    this.#buffered -= n
    this.#offset += n
    const first = this.#chunks[0] as Uint8Array
    if (this.#offset === first.length) {
      this.#chunks.shift()
      this.#offset = 0
    }
  }
}

/** Writes a frame header for a payload of `length` bytes into `target` at `offset`. */
export function writeFrameHeader(target: Uint8Array, offset: number, length: number): void {
  target[offset] = length >>> 24
  target[offset + 1] = (length >>> 16) & 0xff
  target[offset + 2] = (length >>> 8) & 0xff
  target[offset + 3] = length & 0xff
}
