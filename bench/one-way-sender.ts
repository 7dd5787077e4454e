/**
 * The sending side of the one-way benchmarks, as its own process so that sender and
 * receiver never share an event loop. Started once per run with an IPC channel; each
 * message `{ mode, size, port }` opens one connection and sends as fast as the receiver
 * takes it until the receiver closes it, then answers `{ sent }`. Exits when the channel closes.
 *   raw:   length-prefixed frames copied into one buffer per write (the baseline)
 *   wmesh: `sendData` of a Buffer from a @wmesh/core worker (msgpack codec)
 */
import { connect } from 'node:net'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { Handler, startWorker, Worker } from '@wmesh/core'
import { pino } from 'pino'

export interface SendOrder {
  mode: 'raw' | 'wmesh'
  size: number
  port: number
}

/** Safety net: a sender never runs longer than this, whatever the receiver does. */
const MAX_MS = 60_000
/**
 * Messages handed over per turn of the loop before yielding to I/O: about 1 MiB. With
 * 256 KiB writes the raw sender of 64 KiB frames waited on 'drain' so often that it
 * reached about half of what loopback carries (measured: 1.1 vs 2.0 GB/s).
 */
const batchOf = (size: number) => Math.max(1, Math.floor((1024 * 1024) / (size + 4)))

async function sendWmesh({ size, port }: SendOrder): Promise<number> {
  const payload = Buffer.alloc(size, 0x61)
  const batch = batchOf(size)
  class Pump extends Worker {}
  const handle = await startWorker(Pump, undefined, { logger: pino({ level: 'silent' }) })
  const deadline = Date.now() + MAX_MS
  let sent = 0
  try {
    const conn = await handle.worker.connect('127.0.0.1', port, Handler)
    while (conn.connected && Date.now() < deadline) {
      let ok = true
      for (let i = 0; i < batch && ok; i++) {
        ok = conn.sendData(payload)
        sent++
      }
      if (!ok) await conn.waitForDrain().catch(() => {})
      else await nextTurn()
    }
  } finally {
    await handle.stop()
  }
  return sent
}

async function sendRaw({ size, port }: SendOrder): Promise<number> {
  const socket = connect({ host: '127.0.0.1', port, noDelay: true })
  let open = true
  let wake: (() => void) | undefined
  socket.on('error', () => {})
  socket.on('close', () => {
    open = false
    wake?.()
  })
  socket.on('drain', () => wake?.())
  await new Promise((resolve) => socket.once('connect', resolve))
  const frameSize = size + 4
  const batch = batchOf(size)
  const deadline = Date.now() + MAX_MS
  let sent = 0
  while (open && Date.now() < deadline) {
    const frames = Buffer.allocUnsafe(frameSize * batch)
    for (let i = 0; i < batch; i++) {
      frames.writeUInt32BE(size, i * frameSize)
      frames.fill(0x61, i * frameSize + 4, (i + 1) * frameSize)
    }
    sent += batch
    if (!socket.write(frames)) await new Promise<void>((resolve) => (wake = resolve))
    else await nextTurn()
  }
  socket.destroy()
  return sent
}

process.on('message', (order: SendOrder) => {
  const run = order.mode === 'raw' ? sendRaw(order) : sendWmesh(order)
  run.then(
    (sent) => process.send?.({ sent }),
    (error: unknown) => process.send?.({ error: String(error) }),
  )
})
process.on('disconnect', () => process.exit(0))
