import type { Socket } from 'node:net'
import type { ByteSink } from './codec.js'
import { WriteQueueFullError } from './errors.js'

/** Default soft limit: above it `sendData` returns false and callers should wait for drain. */
export const DEFAULT_HIGH_WATER_MARK = 1024 * 1024
/** Default hard limit: above it `sendData` throws `WriteQueueFullError` and queues nothing. */
export const DEFAULT_MAX_QUEUED_BYTES = 64 * 1024 * 1024
/** A pending batch this large is written at once instead of waiting for the end of the tick. */
const EAGER_FLUSH_BYTES = 256 * 1024
/** Size of a fresh batch buffer; later batches fill the rest of it before a new one is made. */
const BATCH_BUFFER_BYTES = 64 * 1024

export interface OutboundQueueInit {
  highWaterMark?: number
  maxQueuedBytes?: number
}

/**
 * Collects the frames sent in one tick in one buffer, written with a single
 * `socket.write` at the end of the tick. One write per small frame is ~25-45x slower on
 * loopback (see TESTING.md), so this is the hot-path decision: codecs encode straight
 * into the batch (`reserve`/`commit`), each frame is copied once, and a flushed region is
 * never written to again (the socket may still hold it), so a buffer is shared by several
 * small batches before a new one is allocated.
 *
 * Bytes counted against the limits are those pending here plus those the socket has not
 * yet handed to the kernel, so a slow reader shows up as backpressure, never as growth.
 */
export class OutboundQueue implements ByteSink {
  readonly highWaterMark: number
  readonly maxQueuedBytes: number
  readonly #socket: Socket
  #buffer: Buffer = Buffer.alloc(0)
  /** Start of the pending (not yet written) region of `#buffer`. */
  #start = 0
  /** End of the pending region: where the next frame goes. */
  #end = 0
  #scheduled = false
  #closed = false
  readonly #writableWaiters = new Set<() => void>()
  /**
   * Runs when the kernel has taken a write: wakes drain waiters once below the high-water
   * mark. A write that failed (the peer reset, the socket was destroyed) empties the buffer
   * without anything being sent: that is no drain, and waiters are left for the socket's close.
   */
  readonly #afterWrite = (error?: Error | null): void => {
    if (error || this.#socket.destroyed) return
    if (this.#writableWaiters.size === 0 || !this.writable) return
    const waiters = [...this.#writableWaiters]
    this.#writableWaiters.clear()
    for (const wake of waiters) wake()
  }
  readonly #flushTask = (): void => {
    this.#scheduled = false
    this.flush()
  }

  constructor(socket: Socket, init: OutboundQueueInit = {}) {
    this.#socket = socket
    this.highWaterMark = init.highWaterMark ?? DEFAULT_HIGH_WATER_MARK
    this.maxQueuedBytes = init.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES
    if (this.maxQueuedBytes < this.highWaterMark) {
      throw new RangeError(
        `maxQueuedBytes (${this.maxQueuedBytes}) must not be below highWaterMark (${this.highWaterMark})`,
      )
    }
  }

  /** Bytes accepted but not yet handed to the kernel. */
  get bufferedBytes(): number {
    return this.#end - this.#start + this.#socket.writableLength
  }

  /** True while there is room below the high-water mark. */
  get writable(): boolean {
    return !this.#closed && this.bufferedBytes < this.highWaterMark
  }

  /** Where the next reserved bytes start (ByteSink). */
  get length(): number {
    return this.#end
  }

  /**
   * Makes room for `n` more bytes and returns the buffer to write them into, at `length`
   * as read after this call (making room may flush the pending bytes and start a new buffer).
   * Throws `WriteQueueFullError` when they would pass the hard limit (unless nothing at all
   * is queued: a single value may be larger than the limit, up to `maxFrameSize`).
   */
  reserve(n: number): Uint8Array {
    const buffered = this.bufferedBytes
    if (buffered > 0 && buffered + n > this.maxQueuedBytes) throw new WriteQueueFullError(buffered, this.maxQueuedBytes)
    if (this.#end + n > this.#buffer.length) {
      // No room: send what is pending now and start a fresh buffer. Growing and copying
      // instead would make a long burst of small frames quadratic.
      this.flush()
      this.#buffer = Buffer.allocUnsafe(Math.max(BATCH_BUFFER_BYTES, n))
      this.#start = 0
      this.#end = 0
    }
    return this.#buffer
  }

  /** Keeps `n` bytes written after `reserve` and schedules the write for the end of the tick. */
  commit(n: number): void {
    this.#end += n
    if (this.#end - this.#start >= EAGER_FLUSH_BYTES) this.flush()
    else if (!this.#scheduled) {
      this.#scheduled = true
      queueMicrotask(this.#flushTask)
    }
  }

  /** Writes everything pending now, as one buffer. */
  flush(): void {
    if (this.#end === this.#start || this.#closed) return
    const chunk = this.#buffer.subarray(this.#start, this.#end)
    this.#start = this.#end
    this.#socket.write(chunk, this.#afterWrite)
  }

  /**
   * Calls `wake` once the bytes still unsent fall below the high-water mark (checked each
   * time the kernel takes a write; the socket's own 'drain' needs its buffer to have been
   * full, which a low high-water mark never reaches). Never called for a failed socket: its
   * owner ends the wait on the socket's close. Returns a cancel function.
   */
  onWritable(wake: () => void): () => void {
    this.#writableWaiters.add(wake)
    return () => this.#writableWaiters.delete(wake)
  }

  /** Drops everything pending; later writes are ignored. */
  discard(): void {
    this.#closed = true
    this.#writableWaiters.clear()
    this.#buffer = Buffer.alloc(0)
    this.#start = 0
    this.#end = 0
  }
}
