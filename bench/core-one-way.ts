/**
 * One way into a @wmesh/core worker server in this process (no node, no threads): the
 * codec and connection path alone, one `receiveData` per message.
 */
import { Handler, startWorker, Worker } from '@wmesh/core'
import { pino } from 'pino'
import { Meter, type OneWay } from './meter.js'
import type { SenderProcess } from './sender-process.js'

export async function coreOneWay(sender: SenderProcess, size: number): Promise<OneWay> {
  const meter = new Meter()
  class Sink extends Handler {
    override receiveData(data: unknown) {
      meter.add(1, (data as Uint8Array).length)
    }
  }
  class Receiver extends Worker {}
  const handle = await startWorker(Receiver, undefined, { logger: pino({ level: 'silent' }), stopTimeout: 1000 })
  try {
    const server = await handle.worker.startServer('127.0.0.1', 0, Sink)
    const sent = sender.send({ mode: 'wmesh', size, port: server.port })
    const result = await meter.result
    await handle.stop()
    await sent
    return result
  } finally {
    await handle.stop()
  }
}
