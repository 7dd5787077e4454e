/**
 * The sending side of the one-way throughput benchmark, run as its own process.
 * usage: sender.ts <wmesh|raw> <payloadBytes> <port> <durationMs>
 * Sends as fast as the receiver takes it, for durationMs, then exits.
 */
import { connect } from 'node:net'
import { Handler, startWorker, Worker } from '@wmesh/core'
import { pino } from 'pino'

const [mode, sizeArg, portArg, durationArg] = process.argv.slice(2)
const size = Number(sizeArg)
const port = Number(portArg)
const duration = Number(durationArg)
const deadline = Date.now() + duration
/** Messages handed over per turn of the loop before yielding to I/O. */
const BATCH = Math.max(1, Math.floor((256 * 1024) / (size + 4)))

async function sendWmesh(): Promise<void> {
  const payload = Buffer.alloc(size, 0x61)
  class Pump extends Worker {}
  const handle = await startWorker(Pump, undefined, { logger: pino({ level: 'warn' }) })
  const conn = await handle.worker.connect('127.0.0.1', port, Handler)
  while (Date.now() < deadline) {
    let ok = true
    for (let i = 0; i < BATCH && ok; i++) ok = conn.sendData(payload)
    if (!ok) await conn.waitForDrain()
    else await new Promise((resolve) => setImmediate(resolve))
  }
  conn.closeConnection({ afterWriting: true })
  await handle.stop()
}

async function sendRaw(): Promise<void> {
  // The baseline: length-prefixed frames copied into one buffer per write.
  const socket = connect({ host: '127.0.0.1', port, noDelay: true })
  await new Promise((resolve) => socket.once('connect', resolve))
  const frameSize = size + 4
  while (Date.now() < deadline) {
    const batch = Buffer.allocUnsafe(frameSize * BATCH)
    for (let i = 0; i < BATCH; i++) {
      batch.writeUInt32BE(size, i * frameSize)
      batch.fill(0x61, i * frameSize + 4, (i + 1) * frameSize)
    }
    if (!socket.write(batch)) await new Promise((resolve) => socket.once('drain', resolve))
    else await new Promise((resolve) => setImmediate(resolve))
  }
  await new Promise<void>((resolve) => socket.end(resolve))
}

if (mode === 'wmesh') await sendWmesh()
else if (mode === 'raw') await sendRaw()
else throw new Error(`unknown mode ${mode}`)
