import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'

const bin = fileURLToPath(new URL('../packages/cli/bin/wmesh.js', import.meta.url))
const echo = fileURLToPath(new URL('../packages/mesh/test/fixtures/workers/echo-worker.mjs', import.meta.url))
const caller = fileURLToPath(new URL('./fixtures/workers/caller-worker.mjs', import.meta.url))
const children: ChildProcess[] = []

afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL')
})

/** Starts `wmesh start` with a config and collects its JSON log lines. */
function startNodeProcess(config: object) {
  const dir = mkdtempSync(join(tmpdir(), 'wmesh-node-'))
  const file = join(dir, 'wmesh.config.json')
  writeFileSync(file, JSON.stringify(config))
  const child = spawn(process.execPath, [bin, 'start', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  const lines: Array<Record<string, unknown>> = []
  const waiters: Array<{
    match: (l: Record<string, unknown>) => boolean
    resolve: (l: Record<string, unknown>) => void
  }> = []
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (text) => {
    const line = JSON.parse(text) as Record<string, unknown>
    lines.push(line)
    for (const w of [...waiters])
      if (w.match(line)) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve(line)
      }
  })
  let stderr = ''
  child.stderr?.on('data', (chunk) => {
    stderr += chunk
  })
  const waitFor = (match: (l: Record<string, unknown>) => boolean) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const found = lines.find(match)
      if (found) return resolve(found)
      waiters.push({ match, resolve })
      child.once('exit', (code) => reject(new Error(`node exited (${code}) first; stderr: ${stderr}`)))
    })
  return { child, lines, waitFor, stderr: () => stderr }
}

describe('wmesh start: graceful shutdown', () => {
  it('on SIGTERM during a stream of calls exits 0 within its deadline, with every call answered or failed', async () => {
    const node = startNodeProcess({
      name: 'shutdown',
      logLevel: 'info',
      shutdownTimeout: 5000,
      workers: { echo: { file: echo, instances: 2 }, caller: { file: caller, args: { concurrency: 4 } } },
    })
    await node.waitFor((l) => l.msg === 'calls flowing')
    const signalled = Date.now()
    node.child.kill('SIGTERM')
    const [code] = (await once(node.child, 'exit')) as [number | null]
    expect(code).toBe(0)
    expect(Date.now() - signalled).toBeLessThan(5000 + 2000)
    const summary = node.lines.find((l) => l.msg === 'caller summary') as {
      started: number
      ok: number
      failed: Record<string, number>
      pending: number
    }
    expect(summary).toBeDefined()
    expect(summary.pending).toBe(0)
    const failed = Object.values(summary.failed).reduce((a, b) => a + b, 0)
    expect(summary.ok + failed).toBe(summary.started)
    expect(summary.ok).toBeGreaterThanOrEqual(50)
    // The only failures are calls refused because the node was stopping.
    expect(Object.keys(summary.failed).every((code) => code === 'ERR_NODE_STOPPING')).toBe(true)
    expect(node.lines.some((l) => l.msg === 'node shutdown stopped')).toBe(true)
  })
})
