/**
 * `npm run bench`: wmesh against a raw `net` baseline measured in the same run, on loopback.
 * Figures are medians of interleaved rounds; ratios are what count on a shared machine.
 * Prints a table and writes JSON under bench/results/.
 */
import { spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { cpus } from 'node:os'
import { fileURLToPath } from 'node:url'
import { type ByteSink, DEFAULT_MAX_FRAME_SIZE, Handler, msgpackCodec, startWorker, Worker } from '@wmesh/core'
import { pino } from 'pino'
import { formatRate, median, spread } from './stats.js'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const WINDOW_MS = Number(process.env.BENCH_WINDOW_MS ?? 1500)
const WARMUP_MS = 300
const NOISY = 0.25
const sender = fileURLToPath(new URL('./sender.ts', import.meta.url))

interface Figure {
  name: string
  unit: string
  value: number
  rounds: number[]
  baseline?: string
  ratio?: number
  target?: number
  noisy: boolean
}

/** Counts received messages and reports the rate over a window that starts after warm-up. */
class Meter {
  count = 0
  bytes = 0
  #first = 0
  #startCount = 0
  #startBytes = 0
  #startTime = 0
  result: Promise<{ perSec: number; bytesPerSec: number }>
  #resolve!: (r: { perSec: number; bytesPerSec: number }) => void

  constructor() {
    this.result = new Promise((resolve) => {
      this.#resolve = resolve
    })
  }

  add(messages: number, bytes: number): void {
    if (this.#first === 0) {
      this.#first = performance.now()
      setTimeout(() => {
        this.#startCount = this.count
        this.#startBytes = this.bytes
        this.#startTime = performance.now()
        setTimeout(() => {
          const seconds = (performance.now() - this.#startTime) / 1000
          this.#resolve({
            perSec: (this.count - this.#startCount) / seconds,
            bytesPerSec: (this.bytes - this.#startBytes) / seconds,
          })
        }, WINDOW_MS)
      }, WARMUP_MS)
    }
    this.count += messages
    this.bytes += bytes
  }
}

async function runSender(mode: 'wmesh' | 'raw', size: number, port: number): Promise<void> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', sender, mode, String(size), String(port), String(WARMUP_MS + WINDOW_MS + 2000)],
    {
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  )
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  if (code !== 0) throw new Error(`${mode} sender exited with ${code}`)
}

/** One-way throughput into a wmesh msgpack server (one receiveData per message). */
async function wmeshOneWay(size: number): Promise<{ perSec: number; bytesPerSec: number }> {
  const meter = new Meter()
  class Sink extends Handler {
    override receiveData(data: unknown) {
      meter.add(1, (data as Uint8Array).length)
    }
  }
  class Receiver extends Worker {}
  const handle = await startWorker(Receiver, undefined, { logger: pino({ level: 'warn' }) })
  const server = await handle.worker.startServer('127.0.0.1', 0, Sink)
  const done = runSender('wmesh', size, server.port)
  const result = await meter.result
  await done
  await handle.stop()
  return result
}

/**
 * One-way throughput into a raw net server (the baseline): it walks the length headers to
 * count frames, as any framed receiver must, but decodes nothing.
 */
async function rawOneWay(size: number): Promise<{ perSec: number; bytesPerSec: number }> {
  const meter = new Meter()
  const server: Server = createServer((socket) => {
    /** Bytes still to skip in the current payload, or -1 while reading a header. */
    let skip = 0
    const header = Buffer.alloc(4)
    let headerFill = 0
    socket.on('data', (chunk: Buffer) => {
      let at = 0
      let frames = 0
      while (at < chunk.length) {
        if (skip > 0) {
          const n = Math.min(skip, chunk.length - at)
          skip -= n
          at += n
          if (skip === 0) frames++
          continue
        }
        if (headerFill === 0 && chunk.length - at >= 4) {
          skip = chunk.readUInt32BE(at)
          at += 4
        } else {
          header[headerFill++] = chunk[at++] as number
          if (headerFill === 4) {
            skip = header.readUInt32BE(0)
            headerFill = 0
          }
        }
      }
      meter.add(frames, frames * size)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  const done = runSender('raw', size, port)
  const result = await meter.result
  await done
  await new Promise((resolve) => server.close(resolve))
  return result
}

/** In-process codec speed on the paths connections use: encode into a batch, decode from chunks. */
function codecRates(size: number): { encode: number; decode: number } {
  const value = Buffer.alloc(size, 0x61)
  const n = Math.max(2000, Math.floor(40_000_000 / (size + 16)))
  const stream = Buffer.allocUnsafe(n * (size + 16))
  const sink: ByteSink = {
    length: 0,
    reserve: () => stream,
    commit(bytes) {
      ;(this as { length: number }).length += bytes
    },
  }
  let t = performance.now()
  for (let i = 0; i < n; i++) msgpackCodec.write(value, sink, DEFAULT_MAX_FRAME_SIZE)
  const encode = n / ((performance.now() - t) / 1000)
  const bytes = stream.subarray(0, sink.length)
  const decoder = msgpackCodec.createDecoder({ maxFrameSize: DEFAULT_MAX_FRAME_SIZE })
  let count = 0
  const deliver = (): boolean => {
    count++
    return true
  }
  t = performance.now()
  for (let off = 0; off < bytes.length; off += 65536) decoder.decode(bytes.subarray(off, off + 65536), deliver)
  const decode = count / ((performance.now() - t) / 1000)
  if (count !== n) throw new Error(`decoded ${count} of ${n} frames`)
  return { encode, decode }
}

async function main(): Promise<void> {
  const sizes = [100, 64 * 1024]
  const results = new Map<string, number[]>()
  const push = (key: string, v: number) => results.set(key, [...(results.get(key) ?? []), v])
  for (let round = 1; round <= ROUNDS; round++) {
    process.stderr.write(`round ${round}/${ROUNDS}\n`)
    for (const size of sizes) {
      // Interleave wmesh and its baseline so drift on the machine hits both alike.
      const raw = await rawOneWay(size)
      const mesh = await wmeshOneWay(size)
      push(`raw-${size}-msgs`, raw.perSec)
      push(`wmesh-${size}-msgs`, mesh.perSec)
      push(`raw-${size}-bytes`, raw.bytesPerSec)
      push(`wmesh-${size}-bytes`, mesh.bytesPerSec)
      const codec = codecRates(size)
      push(`encode-${size}`, codec.encode)
      push(`decode-${size}`, codec.decode)
    }
  }
  const figure = (name: string, key: string, unit: string, baselineKey?: string, target?: number): Figure => {
    const rounds = results.get(key) ?? []
    const value = median(rounds)
    const base = baselineKey ? median(results.get(baselineKey) ?? []) : undefined
    const noisy = spread(rounds) > NOISY || (baselineKey ? spread(results.get(baselineKey) ?? []) > NOISY : false)
    return { name, unit, value, rounds, baseline: baselineKey, ratio: base ? value / base : undefined, target, noisy }
  }
  const figures: Figure[] = [
    figure('raw net one-way, 100 B frames (baseline)', 'raw-100-msgs', 'frames/s'),
    figure('wmesh one-way, 100 B msgpack', 'wmesh-100-msgs', 'msgs/s', 'raw-100-msgs', 0.3),
    figure('raw net one-way, 64 KiB frames (baseline)', 'raw-65536-bytes', 'B/s'),
    figure('wmesh one-way, 64 KiB msgpack', 'wmesh-65536-bytes', 'B/s', 'raw-65536-bytes'),
    figure('encode 100 B value', 'encode-100', 'ops/s'),
    figure('decode 100 B frame', 'decode-100', 'ops/s'),
    figure('encode 64 KiB value', 'encode-65536', 'ops/s'),
    figure('decode 64 KiB frame', 'decode-65536', 'ops/s'),
  ]
  const rows = figures.map((f) => [
    f.name,
    `${formatRate(f.value)}${f.unit}`,
    f.ratio === undefined ? '' : `${f.ratio.toFixed(2)}x`,
    f.target === undefined ? '' : `>= ${f.target}x ${f.ratio !== undefined && f.ratio >= f.target ? 'met' : 'MISSED'}`,
    f.noisy ? 'noisy' : '',
  ])
  const header = ['figure', 'median', 'vs baseline', 'target', '']
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)))
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] as number))
      .join('  ')
      .trimEnd()
  console.log(line(header))
  for (const r of rows) console.log(line(r))
  if (figures.some((f) => f.noisy))
    console.log(
      `\nnoisy: rounds of a figure differ by more than ${NOISY * 100}% of its median; rerun on a quieter machine for firm figures`,
    )
  const dir = fileURLToPath(new URL('./results/', import.meta.url))
  mkdirSync(dir, { recursive: true })
  const file = `${dir}core-${new Date().toISOString().replace(/[:.]/g, '-')}.json`
  writeFileSync(
    file,
    `${JSON.stringify({ date: new Date().toISOString(), node: process.version, cpus: cpus().length, rounds: ROUNDS, windowMs: WINDOW_MS, figures }, null, 2)}\n`,
  )
  console.log(`\nresults: ${file}`)
}

await main()
