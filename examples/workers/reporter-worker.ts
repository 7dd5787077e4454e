/**
 * Shows calls crossing nodes: every few seconds asks foo_worker (wherever it runs) how
 * many greetings it has heard from server_worker (wherever that runs).
 */
import { Worker } from '@wmesh/core'

export default class ReporterWorker extends Worker {
  static override workerName = 'reporter'

  override create(args: { everyMs?: number } = {}) {
    this.addPeriodicTimer(args.everyMs ?? 3000, () => this.report())
  }

  async report() {
    try {
      const [foo] = await this.mesh.worker('foo_worker').info()
      const heard = await this.mesh.worker('foo_worker').call<number>('greetings', undefined, { timeout: 2000 })
      this.log.info(`foo_worker on ${foo?.node ?? '?'} has heard ${heard} greetings from server_worker`)
    } catch (error) {
      this.log.warn(`cannot reach foo_worker yet: ${(error as Error).message}`)
    }
  }
}
