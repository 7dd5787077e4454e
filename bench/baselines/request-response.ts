/**
 * The request/response baselines' client side, in this process, against
 * bench/baselines/echo-server.ts: one connection, requests coalesced into one write per
 * tick, `inflight` closed loops (bench/fixtures/closed-loop.mjs).
 *   raw:     16-byte frames, replies matched in order; no encoding at all
 *   msgpack: one MessagePack value per request and per reply, encoded and decoded on both
 *            sides and matched by id, as an RPC over msgpack must
 */
import type { ChildProcess } from 'node:child_process'
import { connect, type Socket } from 'node:net'
import { fileURLToPath } from 'node:url'
import { Packr } from 'msgpackr'
import { type ClosedLoopInit, closedLoop, type RoundTrips } from '../fixtures/closed-loop.mjs'
import { type Children, waitForLine } from '../processes.js'
import { encodeFrames, FrameReader } from './frames.js'

export type BaselineMode = 'raw' | 'msgpack'

const serverEntry = fileURLToPath(new URL('./echo-server.ts', import.meta.url))
const PAYLOAD = 'x'.repeat(16)

/** One baseline: its echo server process (started once per run) and the client side. */
export class RequestResponseBaseline {
  readonly mode: BaselineMode
  readonly #child: ChildProcess
  #port: Promise<number>

  constructor(children: Children, mode: BaselineMode) {
    this.mode = mode
    this.#child = children.spawn(process.execPath, ['--import', 'tsx', serverEntry, mode], {
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    this.#port = waitForLine(this.#child, (line) => /^\d+$/.test(line)).then(Number)
  }

  /** Round trips at `inflight`, over a fresh connection. */
  async roundTrips(load: ClosedLoopInit): Promise<RoundTrips> {
    const socket = connect({ host: '127.0.0.1', port: await this.#port, noDelay: true })
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject))
    try {
      const request = this.mode === 'raw' ? rawClient(socket) : msgpackClient(socket)
      return await closedLoop(load, request)
    } finally {
      socket.destroy()
    }
  }
}

/** Queues payloads and writes them as one buffer of frames once per tick. */
function batcher(socket: Socket): (payload: Uint8Array) => void {
  let batch: Uint8Array[] = []
  return (payload) => {
    if (batch.length === 0)
      queueMicrotask(() => {
        socket.write(encodeFrames(batch))
        batch = []
      })
    batch.push(payload)
  }
}

function rawClient(socket: Socket): () => Promise<void> {
  const reader = new FrameReader()
  const waiters: Array<() => void> = []
  socket.on('data', (chunk: Buffer) => {
    for (const _ of reader.push(chunk)) waiters.shift()?.()
  })
  const send = batcher(socket)
  const payload = Buffer.from(PAYLOAD)
  return () =>
    new Promise<void>((resolve) => {
      waiters.push(resolve)
      send(payload)
    })
}

function msgpackClient(socket: Socket): () => Promise<unknown> {
  const packr = new Packr({ useRecords: false })
  const reader = new FrameReader()
  const pending = new Map<number, (value: unknown) => void>()
  let nextId = 1
  socket.on('data', (chunk: Buffer) => {
    for (const frame of reader.push(chunk)) {
      const reply = packr.unpack(frame) as { id: number; ok: boolean; value: unknown }
      const resolve = pending.get(reply.id)
      pending.delete(reply.id)
      resolve?.(reply.value)
    }
  })
  const send = batcher(socket)
  return () =>
    new Promise<unknown>((resolve) => {
      const id = nextId++
      pending.set(id, resolve)
      send(packr.pack({ id, method: 'echo', arg: PAYLOAD }))
    })
}
