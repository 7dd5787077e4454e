import { once } from 'node:events'
import { describe, expect, it } from 'vitest'
import { Handler, IdleTimeoutError, startWorker, Worker } from '../src/index.js'
import { memoryLogger, msgpackFrame, rawSocket, recordingServer, trickle } from './helpers.js'

class Plain extends Worker {}

const IDLE = 300

/** An echo server with a short idleTimeout (or `idleTimeout`). */
const server = (idleTimeout = IDLE) => recordingServer({ idleTimeout })

describe('idleTimeout', () => {
  it('closes a connection that sends nothing, with IdleTimeoutError, logged at debug only', async () => {
    const { handle, port, reasons, closed, lines } = await server()
    try {
      const socket = await rawSocket(port)
      const started = performance.now()
      await Promise.all([closed, once(socket, 'close')])
      expect(performance.now() - started).toBeGreaterThanOrEqual(IDLE - 20)
      expect(reasons[0]).toBeInstanceOf(IdleTimeoutError)
      const logged = lines.filter((l) => l.component === 'core:connection')
      expect(logged.map((l) => l.level)).toEqual([20])
    } finally {
      await handle.stop()
    }
  })

  it('closes a slowloris that trickles bytes of a message that never completes', async () => {
    const { handle, port, reasons, closed } = await server()
    try {
      const socket = await rawSocket(port)
      const bytes = Buffer.concat([Buffer.from([0, 0, 0, 200]), Buffer.alloc(150, 0x61)])
      const [, at] = await Promise.all([closed, trickle(socket, bytes)])
      expect(at).toBeGreaterThan(5)
      expect(reasons[0]).toBeInstanceOf(IdleTimeoutError)
    } finally {
      await handle.stop()
    }
  })

  it('keeps a connection open while whole messages keep arriving', async () => {
    // A wide margin (a message every 150 ms against 1 s) so a busy machine cannot fail it.
    const { handle, port, reasons } = await server(1000)
    try {
      const socket = await rawSocket(port)
      let echoed = 0
      socket.on('data', () => echoed++)
      // 1.5 s of traffic in all: past the 1 s idle timeout, never silent that long.
      for (let i = 0; i < 10; i++) {
        socket.write(msgpackFrame(i))
        await new Promise((resolve) => setTimeout(resolve, 150))
      }
      expect(socket.destroyed).toBe(false)
      expect(reasons).toEqual([])
      expect(echoed).toBeGreaterThan(0)
      socket.destroy()
    } finally {
      await handle.stop()
    }
  })

  it('is checked up front', async () => {
    await using handle = await startWorker(Plain, undefined, { logger: memoryLogger().logger })
    await expect(handle.worker.startServer('127.0.0.1', 0, Handler, undefined, { idleTimeout: -1 })).rejects.toThrow(
      /idleTimeout/,
    )
  })
})
