/**
 * `npm run bench:calls`: call round trips between two real node processes (a worker in a
 * thread of one node calling a worker on the other), beside a raw length-prefixed
 * request/response baseline with coalesced writes, at 1, 16 and 128 calls in flight.
 * Medians of interleaved rounds; ratios are what count. Groundwork for issue 7: Moleculer
 * as the peer baseline, casts and service traffic are still to add.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { connectMesh } from '@wmesh/mesh'
import { median } from './stats.js'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const WINDOW_MS = Number(process.env.BENCH_WINDOW_MS ?? 1500)
const INFLIGHT = [1, 16, 128]
const bin = fileURLToPath(new URL('../packages/cli/bin/wmesh.js', import.meta.url))
const echo = fileURLToPath(new URL('../packages/mesh/test/fixtures/workers/echo-worker.mjs', import.meta.url))
const driver = fileURLToPath(new URL('./fixtures/driver-worker.mjs', import.meta.url))
const rawServer = fileURLToPath(new URL('./raw-echo-server.ts', import.meta.url))

interface Rate {
  perSec: number
  p50: number
  p99: number
}

function waitForLine(child: ChildProcess, match: (line: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
    lines.on('line', (line) => {
      if (match(line)) resolve(line)
    })
    child.once('exit', (code) => reject(new Error(`child exited (${code})`)))
  })
}

/** Raw request/response: `inflight` loops, each sending one 16-byte frame and awaiting it. */
async function rawRoundTrips(port: number, inflight: number): Promise<Rate> {
  const socket = connect({ host: '127.0.0.1', port, noDelay: true })
  await new Promise((resolve) => socket.once('connect', resolve))
  const waiters: Array<() => void> = []
  let pending: Buffer = Buffer.alloc(0)
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
    while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0)) {
      pending = pending.subarray(4 + pending.readUInt32BE(0))
      waiters.shift()?.()
    }
  })
  const frame = Buffer.alloc(4 + 16, 0x78)
  frame.writeUInt32BE(16, 0)
  let batch: Buffer[] = []
  const send = () => {
    if (batch.length === 0)
      queueMicrotask(() => {
        socket.write(Buffer.concat(batch))
        batch = []
      })
    batch.push(frame)
  }
  const latencies: number[] = []
  const started = performance.now()
  const deadline = started + WINDOW_MS
  await Promise.all(
    Array.from({ length: inflight }, async () => {
      while (performance.now() < deadline) {
        const t = performance.now()
        await new Promise<void>((resolve) => {
          waiters.push(resolve)
          send()
        })
        latencies.push(performance.now() - t)
      }
    }),
  )
  socket.destroy()
  latencies.sort((a, b) => a - b)
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0
  return { perSec: latencies.length / ((performance.now() - started) / 1000), p50: at(0.5), p99: at(0.99) }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'wmesh-bench-'))
  const secretFile = join(dir, 'secret')
  writeFileSync(secretFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 })
  const ports = [17901 + (process.pid % 500) * 2, 17902 + (process.pid % 500) * 2]
  const seeds = ports.map((p) => `127.0.0.1:${p}`)
  const children: ChildProcess[] = []
  const startNode = (name: string, port: number, workers: object) => {
    const file = join(dir, `${name}.json`)
    writeFileSync(
      file,
      JSON.stringify({
        name,
        listen: `127.0.0.1:${port}`,
        join: seeds,
        mdns: false,
        secretFile,
        logLevel: 'warn',
        workers,
      }),
    )
    const child = spawn(process.execPath, [bin, 'start', '--config', file], { stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(child)
    return child
  }
  const server = spawn(process.execPath, ['--import', 'tsx', rawServer], { stdio: ['pipe', 'pipe', 'inherit'] })
  children.push(server)
  try {
    const rawPort = Number(await waitForLine(server, (l) => /^\d+$/.test(l)))
    startNode('a', ports[0] as number, { driver: { file: driver } })
    startNode('b', ports[1] as number, { echo: { file: echo } })
    const client = await connectMesh({ secretFile, join: seeds, mdns: false })
    for (let i = 0; i < 100; i++) {
      const workers = await client.workers()
      if (workers.filter((w) => w.state === 'running').length === 2) break
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    const results = new Map<string, Rate[]>()
    const push = (key: string, r: Rate) => results.set(key, [...(results.get(key) ?? []), r])
    for (let round = 1; round <= ROUNDS; round++) {
      process.stderr.write(`round ${round}/${ROUNDS}\n`)
      for (const inflight of INFLIGHT) {
        push(`raw-${inflight}`, await rawRoundTrips(rawPort, inflight))
        const mesh = (await client
          .worker('driver')
          .call('run', { target: 'echo', node: 'b', inflight, ms: WINDOW_MS }, { timeout: WINDOW_MS + 10_000 })) as Rate
        push(`wmesh-${inflight}`, mesh)
      }
    }
    await client.close()
    const row = (name: string, key: string, base?: string) => {
      const rs = results.get(key) ?? []
      const perSec = median(rs.map((r) => r.perSec))
      const p50 = median(rs.map((r) => r.p50))
      const p99 = median(rs.map((r) => r.p99))
      const b = base ? median((results.get(base) ?? []).map((r) => r.perSec)) : undefined
      const bp50 = base ? median((results.get(base) ?? []).map((r) => r.p50)) : undefined
      const ratio = b ? ` ${(perSec / b).toFixed(2)}x req/s, p50 ${(p50 / (bp50 as number)).toFixed(1)}x` : ''
      console.log(
        `${name.padEnd(44)} ${Math.round(perSec).toString().padStart(8)} req/s  p50 ${(p50 * 1000).toFixed(0).padStart(6)} us  p99 ${(p99 * 1000).toFixed(0).padStart(7)} us${ratio}`,
      )
    }
    for (const inflight of INFLIGHT) {
      row(`raw request/response, ${inflight} in flight (baseline)`, `raw-${inflight}`)
      row(`wmesh call across nodes, ${inflight} in flight`, `wmesh-${inflight}`, `raw-${inflight}`)
    }
  } finally {
    for (const child of children) child.kill('SIGTERM')
    server.stdin?.end()
  }
}

await main()
