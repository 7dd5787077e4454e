/**
 * A node's footprint: time from spawning `wmesh start` until the node logs that its first
 * worker reported ready (the point from which calls reach it), and the resident memory of
 * the idle node once it is settled. Beside it, the same for a bare `node` process.
 */
import type { ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { type SecretDir, wmeshBin } from './node-files.js'
import { type Children, freePorts, waitForLine } from './processes.js'

const idleFile = fileURLToPath(new URL('./fixtures/idle-worker.mjs', import.meta.url))
/** RSS counts as settled when this many samples in a row... */
const SETTLE_SAMPLES = 10
/** ...taken this far apart... */
const SAMPLE_MS = 50
/** ...stay within this fraction of each other. */
const SETTLE_TOLERANCE = 0.01
/** Longest wait for settling; the last sample counts after it. */
const SETTLE_MAX_MS = 5000

export interface Footprint {
  /** Spawn to the first sign of readiness (ms). */
  startupMs: number
  /** VmRSS once settled (bytes). */
  rssBytes: number
}

/** Resident set size of a process (bytes), from /proc/<pid>/status. */
function rssOf(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (!match) throw new Error(`no VmRSS for ${pid}`)
  return Number(match[1]) * 1024
}

/** Samples RSS until SETTLE_SAMPLES in a row agree within SETTLE_TOLERANCE (or SETTLE_MAX_MS pass). */
async function settledRss(pid: number): Promise<number> {
  const samples: number[] = []
  const deadline = performance.now() + SETTLE_MAX_MS
  for (;;) {
    samples.push(rssOf(pid))
    const last = samples.slice(-SETTLE_SAMPLES)
    const settled =
      last.length === SETTLE_SAMPLES && Math.max(...last) - Math.min(...last) <= SETTLE_TOLERANCE * Math.max(...last)
    if (settled || performance.now() > deadline) return last[last.length - 1] as number
    await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS))
  }
}

/** A pino JSON line of the node whose msg `test` accepts. */
function logged(test: (msg: string) => boolean): (line: string) => boolean {
  return (line) => {
    try {
      const msg = (JSON.parse(line) as { msg?: unknown }).msg
      return typeof msg === 'string' && test(msg)
    } catch {
      return false
    }
  }
}

/** Milliseconds from `started` until `ready`; a child that never gets there is stopped. */
async function startupOf(children: Children, child: ChildProcess, ready: Promise<unknown>, started: number) {
  try {
    await ready
    return performance.now() - started
  } catch (error) {
    await children.stop(child)
    throw error
  }
}

/** A node (`wmesh start`) running `workers` idle worker threads, standing alone with a listener. */
export async function nodeFootprint(children: Children, dir: SecretDir, workers: number): Promise<Footprint> {
  const config = dir.writeConfig(`footprint-${workers}`, {
    listen: `127.0.0.1:${(await freePorts(1))[0]}`,
    join: [],
    logLevel: 'info',
    workers: { idle: { file: idleFile, instances: workers } },
  })
  const started = performance.now()
  const child = children.spawn(process.execPath, [wmeshBin, 'start', '--config', config])
  // Both waits are attached at once: the node may print both lines in one write.
  const firstWorker = waitForLine(
    child,
    logged((msg) => msg === 'worker running'),
  )
  const nodeUp = waitForLine(
    child,
    logged((msg) => /^node \S+ running$/.test(msg)),
  )
  nodeUp.catch(() => {})
  const startupMs = await startupOf(children, child, firstWorker, started)
  try {
    await nodeUp
    return { startupMs, rssBytes: await settledRss(child.pid as number) }
  } finally {
    await children.stop(child)
  }
}

/** The same for a bare `node` process that prints one line and waits: the floor under any Node.js service. */
export async function bareNodeFootprint(children: Children): Promise<Footprint> {
  const started = performance.now()
  const child = children.spawn(process.execPath, ['-e', "console.log('ready'); setInterval(() => {}, 1000)"])
  const startupMs = await startupOf(
    children,
    child,
    waitForLine(child, (line) => line === 'ready'),
    started,
  )
  try {
    return { startupMs, rssBytes: await settledRss(child.pid as number) }
  } finally {
    await children.stop(child)
  }
}
