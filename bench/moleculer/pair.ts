/**
 * The peer baseline: two Moleculer brokers in two processes (bench/moleculer/broker.ts),
 * an action on the caller calling an echo action on the other over the TCP transporter.
 */
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { ClosedLoopInit, RoundTrips } from '../fixtures/closed-loop.mjs'
import { type Children, freePorts } from '../processes.js'

const entry = fileURLToPath(new URL('./broker.ts', import.meta.url))

export class MoleculerPair {
  readonly #children: Children
  readonly #brokers: ChildProcess[] = []
  #caller: ChildProcess | undefined
  /** The Moleculer version the brokers run, once started. */
  version = ''

  constructor(children: Children) {
    this.#children = children
  }

  /** Starts both brokers; resolves when the caller sees the echo service. */
  async start(): Promise<void> {
    const ports = (await freePorts(2)).map(String)
    const started = (['echo', 'caller'] as const).map((role) => {
      const child = this.#children.spawn(process.execPath, ['--import', 'tsx', entry, role, ...ports], {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      })
      this.#brokers.push(child)
      if (role === 'caller') this.#caller = child
      return reply<{ ready: boolean; version: string }>(child)
    })
    const [echo] = await Promise.all(started)
    this.version = echo?.version ?? ''
  }

  /** Round trips at `inflight` calls in flight. */
  async roundTrips(load: ClosedLoopInit): Promise<RoundTrips> {
    const caller = this.#caller
    if (!caller) throw new Error('MoleculerPair is not started')
    const answer = reply<RoundTrips & { error?: string }>(caller)
    caller.send(load)
    const result = await answer
    if (result.error !== undefined) throw new Error(`moleculer caller: ${result.error}`)
    return result
  }

  async stop(): Promise<void> {
    await Promise.all(this.#brokers.map((child) => this.#children.stop(child)))
  }
}

/** The next IPC message of `child`; rejects if it exits first. */
function reply<T>(child: ChildProcess): Promise<T> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`moleculer broker exited (${code})`))
    child.once('exit', onExit)
    child.once('message', (message) => {
      child.off('exit', onExit)
      resolve(message as T)
    })
  })
}
