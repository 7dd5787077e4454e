import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export const wmeshBin = fileURLToPath(new URL('../../packages/cli/bin/wmesh.js', import.meta.url))
export const meshFixtures = fileURLToPath(new URL('../../packages/mesh/test/fixtures/workers/', import.meta.url))
export const testFixtures = fileURLToPath(new URL('../fixtures/workers/', import.meta.url))
export const exampleWorkers = fileURLToPath(new URL('../../examples/workers/', import.meta.url))

export type LogLine = Record<string, unknown>

/** A `wmesh start` process and its JSON log lines. */
export interface NodeProcess {
  name: string
  child: ChildProcess
  lines: LogLine[]
  /** Resolves with the first log line (past or future) that matches; rejects if the process exits first. */
  waitFor(match: (line: LogLine) => boolean, what?: string): Promise<LogLine>
  stderr(): string
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>
}

/** A temporary directory with a fresh cluster secret in `secret`. */
export function tempCluster(): { dir: string; secretFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'wmesh-test-'))
  const secretFile = join(dir, 'secret')
  writeFileSync(secretFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 })
  return { dir, secretFile }
}

/** Ports that were free a moment ago. */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, async () => {
      const server = createServer()
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      return server
    }),
  )
  const ports = servers.map((s) => (s.address() as { port: number }).port)
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))))
  return ports
}

/**
 * Starts `wmesh start --config <file>` with `config` written to `dir`, optionally through a
 * wrapper command (e.g. `ip netns exec h1`).
 */
export function startNodeProcess(
  dir: string,
  config: { name: string } & Record<string, unknown>,
  wrapper: string[] = [],
): NodeProcess {
  const file = join(dir, `${config.name}-${randomBytes(3).toString('hex')}.json`)
  writeFileSync(file, JSON.stringify(config))
  const argv = [...wrapper, process.execPath, wmeshBin, 'start', '--config', file]
  const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: LogLine[] = []
  const waiters: Array<{ match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = []
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (text) => {
    let line: LogLine
    try {
      line = JSON.parse(text) as LogLine
    } catch {
      line = { msg: text }
    }
    lines.push(line)
    for (const w of [...waiters]) {
      if (w.match(line)) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve(line)
      }
    }
  })
  let stderr = ''
  child.stderr?.on('data', (chunk) => {
    stderr += chunk
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const waitFor = (match: (l: LogLine) => boolean, what = 'a log line') =>
    new Promise<LogLine>((resolve, reject) => {
      const found = lines.find(match)
      if (found) return resolve(found)
      waiters.push({ match, resolve })
      void exited.then((code) =>
        reject(new Error(`${config.name} exited (${code}) before ${what}; stderr: ${stderr.slice(-2000)}`)),
      )
    })
  return { name: config.name, child, lines, waitFor, stderr: () => stderr, exited }
}

/** Kills what is still running, and waits for it to be gone. */
export async function killAll(nodes: NodeProcess[]): Promise<void> {
  await Promise.all(
    nodes.map(async (n) => {
      if (n.child.exitCode === null && n.child.signalCode === null) {
        n.child.kill('SIGCONT')
        n.child.kill('SIGKILL')
      }
      await n.exited
    }),
  )
}
