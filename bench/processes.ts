/**
 * The processes a benchmark run starts, with one owner that ends them all: on normal exit,
 * on error, and on SIGINT/SIGTERM of the run itself.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { createInterface, type Interface } from 'node:readline'

const KILL_AFTER_MS = 3000
const readers = new WeakMap<ChildProcess, Interface>()

export class Children {
  readonly #children = new Set<ChildProcess>()
  /** Set once SIGINT/SIGTERM arrived: failures that follow are the children going away. */
  interrupted = false
  #onSignal = (signal: NodeJS.Signals) => {
    this.interrupted = true
    void this.stopAll().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143))
  }

  constructor() {
    process.once('SIGINT', this.#onSignal)
    process.once('SIGTERM', this.#onSignal)
  }

  /** Spawns `command` and keeps it until it exits or `stopAll` ends it. */
  spawn(command: string, args: string[], options: SpawnOptions = {}): ChildProcess {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'], ...options })
    this.#children.add(child)
    if (child.stdout) linesOf(child)
    child.once('exit', () => this.#children.delete(child))
    return child
  }

  /** SIGTERM, then SIGKILL to a child still there after a grace period; resolves when it exited. */
  async stop(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS)
    await exited
    clearTimeout(timer)
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.#children].map((child) => this.stop(child)))
    process.off('SIGINT', this.#onSignal)
    process.off('SIGTERM', this.#onSignal)
  }
}

/** One line reader per child; it keeps reading, so a child's stdout pipe never fills up. */
function linesOf(child: ChildProcess): Interface {
  let lines = readers.get(child)
  if (!lines) {
    lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
    readers.set(child, lines)
  }
  return lines
}

/** Resolves with the next stdout line `match` accepts; rejects if the child exits first. */
export function waitForLine(
  child: ChildProcess,
  match: (line: string) => boolean,
  timeoutMs = 30_000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const lines = linesOf(child)
    const done = (settle: () => void) => {
      clearTimeout(timer)
      child.off('exit', onExit)
      lines.off('line', onLine)
      settle()
    }
    const onLine = (line: string) => {
      if (match(line)) done(() => resolve(line))
    }
    const onExit = (code: number | null) =>
      done(() => reject(new Error(`child exited (${code}) before the line awaited`)))
    const timer = setTimeout(() => done(() => reject(new Error('timed out waiting for a line'))), timeoutMs)
    lines.on('line', onLine)
    child.once('exit', onExit)
  })
}

/** `n` distinct TCP ports free on 127.0.0.1 right now (for processes that need them before they start). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = Array.from({ length: n }, () => createServer())
  await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))))
  const ports = servers.map((server) => (server.address() as { port: number }).port)
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
  return ports
}
