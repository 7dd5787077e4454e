import type { ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export const probeScript = fileURLToPath(new URL('../fixtures/client-probe.mjs', import.meta.url))

type Line = Record<string, unknown>

/** Drives a client-probe process: `request` sends a command and resolves with its answer. */
export class Probe {
  readonly lines: Line[] = []
  readonly #child: ChildProcess
  readonly #waiters: Array<{ match: (l: Line) => boolean; resolve: (l: Line) => void; reject: (e: Error) => void }> = []
  #nextId = 1

  constructor(child: ChildProcess) {
    this.#child = child
    // One exit listener fails every waiter, instead of one listener per wait.
    child.once('exit', (code) => {
      for (const w of this.#waiters.splice(0)) w.reject(new Error(`probe exited (${code})`))
    })
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (text) => {
      const line = JSON.parse(text) as Line
      this.lines.push(line)
      for (const w of [...this.#waiters]) {
        if (w.match(line)) {
          this.#waiters.splice(this.#waiters.indexOf(w), 1)
          w.resolve(line)
        }
      }
    })
  }

  waitFor(match: (l: Line) => boolean, timeout: number, what: string): Promise<Line> {
    const found = this.lines.find(match)
    if (found) return Promise.resolve(found)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`probe: timed out after ${timeout} ms waiting for ${what}`)),
        timeout,
      )
      this.#waiters.push({
        match,
        resolve: (l) => {
          clearTimeout(timer)
          resolve(l)
        },
        reject: (error) => {
          clearTimeout(timer)
          reject(new Error(`${error.message} before ${what}`))
        },
      })
    })
  }

  async request(command: Record<string, unknown>, timeout = 15_000): Promise<Line> {
    const id = this.#nextId++
    this.#child.stdin?.write(`${JSON.stringify({ id, ...command })}\n`)
    return this.waitFor((l) => l.id === id, timeout, `answer to ${command.op}`)
  }

  /** Waits until a call to the echo worker on `node` answers (views converge over time). */
  untilCallable(node: string, what = `${node} reachable`, timeout = 10_000): Promise<Line> {
    return this.until({ op: 'call', worker: 'echo', method: 'echo', arg: 1, node }, (l) => l.ok === true, timeout, what)
  }

  /** Repeats `command` until `accept` holds for an answer (views converge over time). */
  async until(
    command: Record<string, unknown>,
    accept: (l: Line) => boolean,
    timeout: number,
    what: string,
  ): Promise<Line> {
    const deadline = Date.now() + timeout
    for (;;) {
      const answer = await this.request(command)
      if (accept(answer)) return answer
      if (Date.now() > deadline)
        throw new Error(`probe: ${what} not reached in ${timeout} ms; last: ${JSON.stringify(answer)}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
}
