/**
 * The one-way baseline: a raw `net` server that walks the length headers to count frames,
 * as any framed receiver must, but decodes nothing; the sender process copies frames into
 * one buffer per write.
 */
import { createServer, type Socket } from 'node:net'
import { Meter, type OneWay } from '../meter.js'
import type { SenderProcess } from '../sender-process.js'

export async function rawOneWay(sender: SenderProcess, size: number): Promise<OneWay> {
  const meter = new Meter()
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
    /** Bytes still to skip in the current payload. */
    let skip = 0
    const header = Buffer.alloc(4)
    let headerFill = 0
    socket.on('data', (chunk: Buffer) => {
      let at = 0
      let frames = 0
      while (at < chunk.length) {
        if (skip > 0) {
          const n = Math.min(skip, chunk.length - at)
          skip -= n
          at += n
          if (skip === 0) frames++
          continue
        }
        if (headerFill === 0 && chunk.length - at >= 4) {
          skip = chunk.readUInt32BE(at)
          at += 4
        } else {
          header[headerFill++] = chunk[at++] as number
          if (headerFill === 4) {
            skip = header.readUInt32BE(0)
            headerFill = 0
          }
        }
      }
      meter.add(frames, frames * size)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  const sent = sender.send({ mode: 'raw', size, port })
  try {
    return await meter.result
  } finally {
    for (const socket of sockets) socket.destroy()
    server.close()
    await sent
  }
}
