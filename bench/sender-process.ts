/** Handle on the one-way sender process (bench/one-way-sender.ts), started once per run. */
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { SendOrder } from './one-way-sender.js'
import type { Children } from './processes.js'

const entry = fileURLToPath(new URL('./one-way-sender.ts', import.meta.url))

export class SenderProcess {
  readonly #child: ChildProcess

  constructor(children: Children) {
    this.#child = children.spawn(process.execPath, ['--import', 'tsx', entry], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
  }

  /** Sends until the receiver on `port` closes the connection; resolves to the messages sent. */
  send(order: SendOrder): Promise<number> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`one-way sender exited (${code})`))
      this.#child.once('exit', onExit)
      this.#child.once('message', (reply: { sent?: number; error?: string }) => {
        this.#child.off('exit', onExit)
        if (reply.error !== undefined) reject(new Error(`one-way sender: ${reply.error}`))
        else resolve(reply.sent ?? 0)
      })
      this.#child.send(order)
    })
  }
}
