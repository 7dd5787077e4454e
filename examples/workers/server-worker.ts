/**
 * The seed's ServerWorker and TimeServer (BackgrounDRb "Advanced Stuff"), line by line:
 * a TCP server inside a worker that says "Hello World" to each client every 2 s.
 */
import { Handler, Worker } from '@wmesh/core'

export interface ServerWorkerArgs {
  host?: string
  port?: number
  /** Milliseconds between greetings (the seed uses 2 s). */
  intervalMs?: number
}

export class TimeServer extends Handler<ServerWorker> {
  override postInit() {
    this.addPeriodicTimer(this.worker.intervalMs, () => this.sayHelloWorld())
  }

  override receiveData(_data: unknown) {}

  override connectionCompleted() {}

  sayHelloWorld() {
    this.log.debug({ peer: this.peer.address }, 'invoking hello world')
    this.sendData('Hello World\n')
  }
}

export default class ServerWorker extends Worker {
  static override workerName = 'server_worker'
  intervalMs = 2000
  port = 0

  override async create(args: ServerWorkerArgs = {}) {
    this.intervalMs = args.intervalMs ?? 2000
    // Start the server when the worker starts; greet each client as soon as it is accepted.
    const server = await this.startServer(
      args.host ?? '0.0.0.0',
      args.port ?? 11009,
      TimeServer,
      (client) => client.sayHelloWorld(),
      { codec: 'raw', publish: 'time' },
    )
    this.port = server.port
    this.log.info({ port: server.port }, 'time server listening')
  }
}
