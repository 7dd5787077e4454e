import { once } from 'node:events'
import { connect as netConnect, type Socket } from 'node:net'
import { type Logger, pino } from 'pino'
import { type ConnectionOptions, Handler, packValue, startWorker, Worker } from '../src/index.js'

/** A promise with its resolvers, for awaiting events instead of sleeping. */
export function deferred<T = void>(): {
  promise: Promise<T>
  resolve: (value: T) => void
  reject: (error: unknown) => void
} {
  let resolve!: (value: T) => void
  let reject!: (error: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

/** A logger that keeps its lines in memory, so tests can assert on what was logged. */
export function memoryLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const logger = pino(
    { level: 'debug' },
    {
      write(line: string) {
        lines.push(JSON.parse(line) as Record<string, unknown>)
      },
    },
  )
  return { logger, lines }
}

/** Resolves when `predicate` holds, polling on each macrotask turn; fails after `timeout` ms. */
export async function until(predicate: () => boolean, timeout = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeout
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`)
    await new Promise((resolve) => setImmediate(resolve))
  }
}

/** A socket to 127.0.0.1:`port` whose errors are ignored (tests close it from the server side). */
export async function rawSocket(port: number, options: { allowHalfOpen?: boolean } = {}): Promise<Socket> {
  const socket = netConnect({ host: '127.0.0.1', port, ...options })
  socket.on('error', () => {})
  await once(socket, 'connect')
  return socket
}

/** One msgpack frame: a 4-byte big-endian length, then the value. */
export function msgpackFrame(value: unknown): Buffer {
  const body = packValue(value)
  const head = Buffer.alloc(4)
  head.writeUInt32BE(body.length)
  return Buffer.concat([head, body])
}

class Plain extends Worker {}

/**
 * An echo server with `options` on a fresh worker, recording why each connection ended;
 * `closed` resolves at the first end. Stop it with `handle.stop()`.
 */
export async function recordingServer(options: ConnectionOptions) {
  const reasons: Array<Error | undefined> = []
  const closed = deferred()
  class Recorder extends Handler {
    override receiveData(data: unknown) {
      this.sendData(data)
    }
    override unbind(reason?: Error) {
      reasons.push(reason)
      closed.resolve()
    }
  }
  const { logger, lines } = memoryLogger()
  const handle = await startWorker(Plain, undefined, { logger })
  const srv = await handle.worker.startServer('127.0.0.1', 0, Recorder, undefined, options)
  return { handle, port: srv.port, reasons, closed: closed.promise, lines }
}

/**
 * Writes `bytes` to `socket` one byte every 20 ms (a slowloris), until the socket closes;
 * resolves with how many bytes went out.
 */
export async function trickle(socket: Socket, bytes: Uint8Array): Promise<number> {
  let at = 0
  const timer = setInterval(() => {
    if (at < bytes.length && !socket.destroyed) socket.write(bytes.subarray(at, ++at))
  }, 20)
  try {
    await once(socket, 'close')
  } finally {
    clearInterval(timer)
  }
  return at
}
