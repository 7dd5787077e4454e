/**
 * The seed's FooWorker and TimeClient: a worker that connects to the time server and
 * hands each message it receives to `getExternalData`.
 */
import { Handler, Worker } from '@wmesh/core'

export interface FooWorkerArgs {
  host?: string
  port?: number
  /** In a cluster: connect to the server published under this name, wherever it runs. */
  service?: string
}

export class TimeClient extends Handler<FooWorker> {
  override receiveData(data: unknown) {
    this.worker.getExternalData(String(data))
  }

  override postInit() {
    this.log.info('connection completed')
  }
}

export default class FooWorker extends Worker {
  static override workerName = 'foo_worker'
  externalConnection: TimeClient | undefined
  /** Every message received so far (newest last), for callers that want to look. */
  readonly messages: string[] = []

  override async create(args: FooWorkerArgs = {}) {
    const keep = (conn: TimeClient) => {
      this.externalConnection = conn
    }
    if (args.service) {
      // The seed's connect, without a hard-coded address: the registry knows where "time" runs.
      await this.connectService(args.service, TimeClient, keep, { codec: 'raw' })
    } else {
      await this.connect(args.host ?? 'localhost', args.port ?? 11009, TimeClient, keep, { codec: 'raw' })
    }
  }

  getExternalData(data: string) {
    this.messages.push(data)
    this.log.info(`And external data is : ${JSON.stringify(data)}`)
  }

  /** How many "Hello World" greetings arrived so far (callable: `wmesh call foo_worker greetings`). */
  greetings(): number {
    return this.messages.join('').split('Hello World\n').length - 1
  }
}
