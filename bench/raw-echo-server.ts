/**
 * The request/response baseline's server, as its own process: length-prefixed frames in,
 * the same frames out, replies coalesced into one write per read.
 * usage: raw-echo-server.ts  (prints its port, exits when stdin closes)
 */
import { createServer } from 'node:net'

const server = createServer({ noDelay: true }, (socket) => {
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
  socket.on('error', () => {})
})
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${(server.address() as { port: number }).port}\n`)
})
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()
