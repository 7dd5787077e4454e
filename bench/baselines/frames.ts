/** Length-prefixed frames for the baselines: a 4-byte big-endian length, then the payload. */

/** Splits a byte stream into frame payloads; keeps an incomplete tail for the next chunk. */
export class FrameReader {
  #pending: Buffer = Buffer.alloc(0)

  /** Payloads completed by `chunk` (views into the received bytes, valid until the next call). */
  push(chunk: Buffer): Buffer[] {
    const data = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk])
    const frames: Buffer[] = []
    let at = 0
    while (data.length - at >= 4) {
      const length = data.readUInt32BE(at)
      if (data.length - at - 4 < length) break
      frames.push(data.subarray(at + 4, at + 4 + length))
      at += 4 + length
    }
    this.#pending = data.subarray(at)
    return frames
  }
}

/** Copies payloads into one buffer of frames, for one `write`. */
export function encodeFrames(payloads: Uint8Array[]): Buffer {
  let total = 0
  for (const p of payloads) total += 4 + p.length
  const out = Buffer.allocUnsafe(total)
  let at = 0
  for (const p of payloads) {
    out.writeUInt32BE(p.length, at)
    out.set(p, at + 4)
    at += 4 + p.length
  }
  return out
}
