/** In-process msgpack codec speed on the paths connections use: encode into a batch, decode from chunks. */
import { type ByteSink, DEFAULT_MAX_FRAME_SIZE, msgpackCodec } from '@wmesh/core'

export function codecRates(size: number): { encode: number; decode: number } {
  const value = Buffer.alloc(size, 0x61)
  const n = Math.max(2000, Math.floor(40_000_000 / (size + 16)))
  const stream = Buffer.allocUnsafe(n * (size + 16))
  const sink: ByteSink = {
    length: 0,
    reserve: () => stream,
    commit(bytes) {
      ;(this as { length: number }).length += bytes
    },
  }
  let t = performance.now()
  for (let i = 0; i < n; i++) msgpackCodec.write(value, sink, DEFAULT_MAX_FRAME_SIZE)
  const encode = n / ((performance.now() - t) / 1000)
  const bytes = stream.subarray(0, sink.length)
  const decoder = msgpackCodec.createDecoder({ maxFrameSize: DEFAULT_MAX_FRAME_SIZE })
  let count = 0
  const deliver = (): boolean => {
    count++
    return true
  }
  t = performance.now()
  for (let off = 0; off < bytes.length; off += 65536) decoder.decode(bytes.subarray(off, off + 65536), deliver)
  const decode = count / ((performance.now() - t) / 1000)
  if (count !== n) throw new Error(`decoded ${count} of ${n} frames`)
  return { encode, decode }
}
