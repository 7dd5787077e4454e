/**
 * The request/response baselines' server, as its own process, replies coalesced into one
 * write per read:
 *   raw:     the same length-prefixed frames back, untouched
 *   msgpack: each frame decoded as one MessagePack request `{ id, method, arg }` and answered
 *            with one encoded reply `{ id, ok, value }`, as an RPC server must
 * usage: echo-server.ts <raw|msgpack>  (prints its port, exits when stdin closes)
 */
import { createServer, type Socket } from 'node:net'
import { Packr } from 'msgpackr'
import { encodeFrames, FrameReader } from './frames.js'

const mode = process.argv[2] ?? 'raw'
const packr = new Packr({ useRecords: false })

function serveRaw(socket: Socket): void {
  let pending: Buffer = Buffer.alloc(0)
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
    let at = 0
    while (pending.length - at >= 4) {
      const length = pending.readUInt32BE(at)
      if (pending.length - at < 4 + length) break
      at += 4 + length
    }
    if (at > 0) socket.write(pending.subarray(0, at))
    pending = pending.subarray(at)
  })
}

function serveMsgpack(socket: Socket): void {
  const reader = new FrameReader()
  socket.on('data', (chunk: Buffer) => {
    const replies: Uint8Array[] = []
    for (const frame of reader.push(chunk)) {
      const request = packr.unpack(frame) as { id: number; method: string; arg: unknown }
      replies.push(packr.pack({ id: request.id, ok: true, value: request.arg }))
    }
    if (replies.length > 0) socket.write(encodeFrames(replies))
  })
}

const server = createServer({ noDelay: true }, (socket) => {
  socket.on('error', () => {})
  if (mode === 'msgpack') serveMsgpack(socket)
  else serveRaw(socket)
})
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${(server.address() as { port: number }).port}\n`)
})
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()
