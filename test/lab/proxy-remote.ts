/**
 * The lab proxy inside a lab host's network namespace: a process (`proxy-main.ts`) run with
 * `ip netns exec`, driven over its stdin/stdout, with the same `ProxyControl` functions as
 * the proxy in this process (a process cannot listen in another namespace).
 */
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { LabHost } from './netns.js'
import type { CorruptOptions, ProxyControl, ProxyInit, ProxyStats } from './proxy.js'

const proxyMain = fileURLToPath(new URL('./proxy-main.ts', import.meta.url))
const tsxLoader = new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).href

/**
 * Starts a proxy inside a lab host's namespace (listening on `init.host`, default the
 * host's address), driven over stdin/stdout. The lab kills it on destroy; `close()` ends it first.
 */
export async function startProxyIn(host: LabHost, init: ProxyInit): Promise<ProxyControl> {
  const child = host.exec(
    process.execPath,
    ['--import', tsxLoader, proxyMain, JSON.stringify({ ...init, host: init.host ?? host.ip })],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  )
  return RemoteProxy.start(child)
}

type Answer = { id?: number; ok?: boolean; value?: unknown; error?: string; event?: string } & Record<string, unknown>

/** A proxy in another process, same functions, each a request over its stdin. */
class RemoteProxy implements ProxyControl {
  readonly host: string
  readonly port: number
  readonly seed: number
  readonly #child: ChildProcess
  readonly #waiting = new Map<number, (answer: Answer) => void>()
  #nextId = 1
  #closing: Promise<void> | undefined

  private constructor(child: ChildProcess, ready: Answer, lines: ReturnType<typeof createInterface>) {
    this.#child = child
    this.host = ready.host as string
    this.port = ready.port as number
    this.seed = ready.seed as number
    lines.on('line', (text) => {
      const answer = JSON.parse(text) as Answer
      if (answer.id === undefined) return
      this.#waiting.get(answer.id)?.(answer)
      this.#waiting.delete(answer.id)
    })
    child.once('exit', (code) => {
      for (const settle of this.#waiting.values()) settle({ ok: false, error: `the proxy process exited (${code})` })
      this.#waiting.clear()
    })
  }

  static async start(child: ChildProcess): Promise<RemoteProxy> {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
    const ready = await new Promise<Answer>((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`the proxy process exited (${code}) before listening`))
      child.once('exit', onExit)
      lines.once('line', (text) => {
        child.off('exit', onExit)
        resolve(JSON.parse(text) as Answer)
      })
    })
    if (ready.event !== 'listening') throw new Error(`the proxy process said ${JSON.stringify(ready)}`)
    return new RemoteProxy(child, ready, lines)
  }

  async #request(op: string, arg?: unknown): Promise<unknown> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) throw new Error('the proxy process is gone')
    const id = this.#nextId++
    const answer = new Promise<Answer>((resolve) => this.#waiting.set(id, resolve))
    this.#child.stdin?.write(`${JSON.stringify({ id, op, arg })}\n`)
    const { ok, value, error } = await answer
    if (!ok) throw new Error(`proxy ${op} failed: ${error}`)
    return value
  }

  async delay(ms: number): Promise<void> {
    await this.#request('delay', ms)
  }

  async stall(): Promise<void> {
    await this.#request('stall')
  }

  async stallOpen(): Promise<void> {
    await this.#request('stallOpen')
  }

  async resume(): Promise<void> {
    await this.#request('resume')
  }

  async corrupt(options: CorruptOptions): Promise<void> {
    await this.#request('corrupt', options)
  }

  async heal(): Promise<void> {
    await this.#request('heal')
  }

  async closeConnections(): Promise<void> {
    await this.#request('closeConnections')
  }

  async reset(): Promise<void> {
    await this.#request('reset')
  }

  async stats(): Promise<ProxyStats> {
    return (await this.#request('stats')) as ProxyStats
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#child.exitCode !== null || this.#child.signalCode !== null) return
      const exited = once(this.#child, 'exit')
      this.#child.stdin?.end()
      const timer = setTimeout(() => this.#child.kill('SIGKILL'), 2000)
      await exited
      clearTimeout(timer)
    })()
    return this.#closing
  }
}
