import { once } from 'node:events'
import { describe, expect, it } from 'vitest'
import { type ConnectionOptions, FrameTimeoutError, Handler, startWorker, Worker } from '../src/index.js'
import { memoryLogger, msgpackFrame, rawSocket, recordingServer, trickle } from './helpers.js'

class Plain extends Worker {}

const FRAME_TIMEOUT = 300

/** An echo server with a short frameTimeout (or `options`). */
const server = (options: ConnectionOptions = { frameTimeout: FRAME_TIMEOUT }) => recordingServer(options)

describe('frameTimeout', () => {
  it('closes a connection whose message stops part-way, with FrameTimeoutError and one warning', async () => {
    const { handle, port, reasons, closed, lines } = await server()
    try {
      const socket = await rawSocket(port)
      // A header announcing 1000 bytes, then 10 of them, then nothing.
      socket.write(Buffer.concat([Buffer.from([0, 0, 3, 232]), Buffer.alloc(10, 0x61)]))
      const started = performance.now()
      await Promise.all([closed, once(socket, 'close')])
      expect(performance.now() - started).toBeGreaterThanOrEqual(FRAME_TIMEOUT - 20)
      expect(reasons[0]).toBeInstanceOf(FrameTimeoutError)
      expect((reasons[0] as Error).message).toMatch(
        /made no progress for 300 ms \(frameTimeout: .*\); 14 bytes of it came/,
      )
      const logged = lines.filter((l) => l.component === 'core:connection')
      expect(logged.map((l) => [l.level, l.code])).toEqual([[40, 'ERR_FRAME_TIMEOUT']])
    } finally {
      await handle.stop()
    }
  })

  it('closes a connection that sends a bare header, alone or after a whole message, then stalls', async () => {
    for (const bytes of [
      Buffer.from([0, 0xff, 0xff, 0xff]),
      Buffer.concat([msgpackFrame('whole'), Buffer.from([0, 0, 1, 0])]),
    ]) {
      const { handle, port, reasons, closed } = await server()
      try {
        const socket = await rawSocket(port)
        socket.write(bytes)
        await closed
        socket.destroy()
        expect(reasons[0]).toBeInstanceOf(FrameTimeoutError)
        expect((reasons[0] as Error).message).toMatch(/; 4 bytes of it came/)
      } finally {
        await handle.stop()
      }
    }
  })

  it('closes a slowloris that trickles a message that never completes, though bytes keep coming', async () => {
    const { handle, port, reasons, closed } = await server()
    try {
      const socket = await rawSocket(port)
      const bytes = Buffer.concat([Buffer.from([0, 0, 0, 200]), Buffer.alloc(150, 0x61)])
      const [, at] = await Promise.all([closed, trickle(socket, bytes)])
      expect(at).toBeGreaterThan(5)
      expect(reasons[0]).toBeInstanceOf(FrameTimeoutError)
    } finally {
      await handle.stop()
    }
  })

  it('leaves alone an idle connection between messages, and messages split across writes that complete', async () => {
    const { handle, port, reasons } = await server({ frameTimeout: 200 })
    try {
      const socket = await rawSocket(port)
      let echoed = 0
      socket.on('data', () => echoed++)
      // Idle well past the frame timeout: no message is part-way in.
      await new Promise((resolve) => setTimeout(resolve, 500))
      // Then messages cut in two, each half 100 ms apart (under the timeout), for 600 ms.
      for (let i = 0; i < 3; i++) {
        const bytes = msgpackFrame(`message ${i}`)
        socket.write(bytes.subarray(0, 5))
        await new Promise((resolve) => setTimeout(resolve, 100))
        socket.write(bytes.subarray(5))
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      expect(socket.destroyed).toBe(false)
      expect(reasons).toEqual([])
      expect(echoed).toBeGreaterThan(0)
      socket.destroy()
    } finally {
      await handle.stop()
    }
  })

  it('lets a large message arrive slowly, 16 KiB at a time, over many frameTimeouts', async () => {
    const { handle, port, reasons } = await server({ frameTimeout: 200 })
    try {
      const socket = await rawSocket(port)
      const bytes = msgpackFrame(Buffer.alloc(80 * 1024, 0x62))
      const echoed = new Promise<void>((resolve) => {
        let got = 0
        socket.on('data', (chunk: Buffer) => {
          got += chunk.length
          if (got >= bytes.length) resolve()
        })
      })
      // Six steps of 16 KiB, 150 ms apart: 750 ms for the message, never 200 ms without progress.
      for (let at = 0; at < bytes.length; at += 16 * 1024) {
        socket.write(bytes.subarray(at, at + 16 * 1024))
        await new Promise((resolve) => setTimeout(resolve, 150))
      }
      await echoed
      expect(reasons).toEqual([])
      socket.destroy()
    } finally {
      await handle.stop()
    }
  })

  it('is off with 0, and with the raw codec (every read is a message)', async () => {
    for (const options of [{ frameTimeout: 0 }, { frameTimeout: 100, codec: 'raw' as const }]) {
      const { handle, port, reasons } = await server(options)
      try {
        const socket = await rawSocket(port)
        socket.write(Buffer.from([0, 0, 3, 232, 1, 2]))
        await new Promise((resolve) => setTimeout(resolve, 400))
        expect(socket.destroyed, JSON.stringify(options)).toBe(false)
        expect(reasons).toEqual([])
        socket.destroy()
      } finally {
        await handle.stop()
      }
    }
  })

  it('is checked up front', async () => {
    await using handle = await startWorker(Plain, undefined, { logger: memoryLogger().logger })
    for (const frameTimeout of [-1, 1.5, 2 ** 31]) {
      await expect(handle.worker.startServer('127.0.0.1', 0, Handler, undefined, { frameTimeout })).rejects.toThrow(
        /frameTimeout/,
      )
    }
  })
})
