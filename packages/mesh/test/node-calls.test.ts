import { once } from 'node:events'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  AbortError,
  InvalidArgumentError,
  NodeStoppingError,
  NoSuchMethodError,
  NoSuchWorkerError,
  RemoteError,
  TimeoutError,
  WorkerDownError,
  type WorkerInfo,
} from '@wmesh/core'
import { ConfigError, MeshNode } from '@wmesh/mesh'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { fixtures, startNode } from './helpers.js'

const echo = join(fixtures, 'echo-worker.mjs')
const fast = { initialDelay: 100, maxDelay: 1000, resetAfter: 30_000 }
const nodes: MeshNode[] = []

async function node(config: Parameters<typeof startNode>[0]) {
  const started = await startNode(config)
  nodes.push(started.node)
  return started
}

afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()))
})

/** Resolves with the next worker:up of `name` (optionally `key`). */
function nextUp(n: MeshNode, name: string): Promise<WorkerInfo> {
  return new Promise((resolve) => {
    const listener = (info: WorkerInfo) => {
      if (info.name !== name) return
      n.off('worker:up', listener)
      resolve(info)
    }
    n.on('worker:up', listener)
  })
}

describe('calls on one node', () => {
  it('returns results as MessagePack values and rebuilds thrown errors as RemoteError', async () => {
    const { node: n } = await node({ workers: { echo: { file: echo, restart: fast } } })
    const value = { list: [1, 'two', null], nested: { ok: true }, big: 2n ** 60n, bytes: Buffer.from([1, 2]) }
    expect(await n.worker('echo').call('echo', value)).toEqual(value)
    const error = await n
      .worker('echo')
      .call('fail', 'it broke')
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(RemoteError)
    expect(error).toMatchObject({
      code: 'ERR_REMOTE',
      remoteCode: 'E_CUSTOM',
      remoteName: 'Error',
      message: 'it broke',
    })
    expect((error as RemoteError).remoteStack).toMatch(/fail/)
  })

  it('fails with NoSuchWorkerError for an unknown worker and NoSuchMethodError for a non-public method', async () => {
    const { node: n } = await node({ workers: { echo: { file: echo } } })
    await expect(n.worker('nobody').call('echo')).rejects.toBeInstanceOf(NoSuchWorkerError)
    await expect(n.worker('echo').call('missing')).rejects.toBeInstanceOf(NoSuchMethodError)
    await expect(n.worker('echo').call('_private')).rejects.toBeInstanceOf(NoSuchMethodError)
    await expect(n.worker('echo').call('create')).rejects.toBeInstanceOf(NoSuchMethodError)
    // NoSuchMethodError is a kind of NoSuchWorkerError.
    await expect(n.worker('echo').call('missing')).rejects.toBeInstanceOf(NoSuchWorkerError)
  })

  it('times out a call that takes too long, and the worker keeps answering', async () => {
    const { node: n } = await node({ workers: { echo: { file: echo } } })
    await expect(n.worker('echo').call('sleep', 2000, { timeout: 50 })).rejects.toBeInstanceOf(TimeoutError)
    expect(await n.worker('echo').call('echo', 'still here')).toBe('still here')
  })

  it('ends a call with AbortError when its signal aborts (at once if already aborted), and the worker keeps answering', async () => {
    const { node: n } = await node({ workers: { echo: { file: echo } } })
    const controller = new AbortController()
    const pending = n.worker('echo').call('sleep', 2000, { timeout: 10_000, signal: controller.signal })
    controller.abort(new Error('user gave up'))
    const error = await pending.catch((e: unknown) => e)
    expect(error).toBeInstanceOf(AbortError)
    expect((error as Error).message).toMatch(/call echo\.sleep was aborted/)
    await expect(n.worker('echo').call('echo', 'x', { signal: controller.signal })).rejects.toBeInstanceOf(AbortError)
    expect(await n.worker('echo').call('echo', 'still here')).toBe('still here')
  })

  it('logs a cast that throws, but a flood of them as a few lines', async () => {
    const { node: n, logs } = await node({ workers: { echo: { file: echo, restart: fast } } })
    const ref = n.worker('echo')
    for (let i = 0; i < 50; i++) await ref.cast('fail', `cast ${i}`)
    // A thread handles its messages in order and its log lines keep that order.
    await ref.call('warn', 'after the casts')
    await vi.waitFor(() => expect(logs.lines.some((l) => l.msg === 'after the casts')).toBe(true), {
      timeout: 10_000,
      interval: 5,
    })
    const failures = logs.lines.filter((l) => String(l.msg).startsWith('cast fail threw'))
    expect(failures.map((l) => l.msg)).toEqual([0, 1, 2, 3, 4].map((i) => `cast fail threw: cast ${i}`))
  })

  it('fails a call in flight at once when its worker crashes, then restarts the worker after its backoff', async () => {
    const { node: n, logs } = await node({ workers: { echo: { file: echo, restart: fast } } })
    const up = nextUp(n, 'echo')
    const started = Date.now()
    const error = await n
      .worker('echo')
      .call('crash', undefined, { timeout: 20_000 })
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(WorkerDownError)
    expect(Date.now() - started).toBeLessThan(5000)
    await up
    expect(await n.worker('echo').call('echo', 'back')).toBe('back')
    const [info] = await n.worker('echo').info()
    expect(info).toMatchObject({ state: 'running', restarts: 1, lastExit: 'threw: crash requested' })
    expect(logs.lines.some((l) => String(l.msg).startsWith('worker crashed (threw: crash requested)'))).toBe(true)
  })

  it('survives a worker calling process.exit: the others keep answering and it comes back', async () => {
    const { node: n } = await node({
      workers: { echo: { file: echo, restart: fast }, typed: { file: join(fixtures, 'typed-worker.ts') } },
    })
    const up = nextUp(n, 'echo')
    await expect(n.worker('echo').call('exit', 7)).rejects.toBeInstanceOf(WorkerDownError)
    expect(await n.worker('typed').call('add', { a: 1, b: 2 })).toBe(3)
    await up
    const [info] = await n.worker('echo').info()
    expect(info?.lastExit).toBe('exited with code 7')
    expect(await n.worker('echo').call('echo', 1)).toBe(1)
  })

  it('restarts a worker whose create throws, and it then serves calls', async () => {
    const marker = join(mkdtempSync(join(tmpdir(), 'wmesh-flaky-')), 'marker')
    const { node: n } = await node({
      workers: { flaky: { file: join(fixtures, 'flaky-create.mjs'), args: { marker }, restart: fast } },
    })
    const [before] = await n.worker('flaky').info()
    expect(before?.lastExit).toMatch(/first create fails/)
    if (before?.state !== 'running') await nextUp(n, 'flaky')
    expect(await n.worker('flaky').call('ping')).toBe('pong')
  })

  it('a worker blocking its thread for 2 s does not delay calls to other workers or instances', async () => {
    const { node: n } = await node({
      workers: { echo: { file: echo, instances: 2 }, typed: { file: join(fixtures, 'typed-worker.ts') } },
    })
    const blocked = n.worker('echo').call('block', 2000, { timeout: 10_000 })
    const started = Date.now()
    expect(await n.worker('typed').call('add', { a: 2, b: 2 })).toBe(4)
    // Round-robin sends the next unkeyed call to the other instance.
    expect(await n.worker('echo').call('echo', 'other instance')).toBe('other instance')
    const elapsed = Date.now() - started
    expect(elapsed).toBeLessThan(1000)
    expect(await blocked).toBe(2000)
  })

  it('spreads calls over N instances', async () => {
    const { node: n } = await node({ workers: { echo: { file: echo, instances: 3 } } })
    const threads = new Set<number>()
    for (let i = 0; i < 12; i++) threads.add(((await n.worker('echo').call('whoami')) as { threadId: number }).threadId)
    expect(threads.size).toBe(3)
  })

  it('starts and deletes keyed instances at run time, and routes by key', async () => {
    const { node: n } = await node({ workers: { echo: { file: echo } } })
    const info = await n.newWorker('echo', { key: 'k1', data: { role: 'keyed' } })
    expect(info).toMatchObject({ name: 'echo', key: 'k1', state: 'running' })
    expect(await n.worker('echo', { key: 'k1' }).call('whoami')).toMatchObject({ args: { role: 'keyed' } })
    // Unkeyed calls never reach the keyed instance.
    for (let i = 0; i < 4; i++) expect(await n.worker('echo').call('whoami')).toMatchObject({ args: null })
    await expect(n.newWorker('echo', { key: 'k1' })).rejects.toThrow(/already has an instance/)
    await n.worker('echo', { key: 'k1' }).delete()
    await expect(n.worker('echo', { key: 'k1' }).call('whoami')).rejects.toBeInstanceOf(NoSuchWorkerError)
    expect((await n.workers()).map((w) => w.key)).toEqual([undefined])
  })

  it('refuses at once a key longer than other nodes accept (they would drop its messages)', async () => {
    const { node: n } = await node({ workers: { echo: { file: echo } } })
    const long = 'k'.repeat(201)
    await expect(n.newWorker('echo', { key: long })).rejects.toThrow(
      new InvalidArgumentError('worker key is 201 characters long; at most 200 cross the network'),
    )
    expect(() => n.worker('echo', { key: long })).toThrow(InvalidArgumentError)
    // A worker's own references are checked the same way.
    const relayed = await n
      .worker('echo')
      .call('relay', { worker: 'echo', method: 'echo', arg: 1, key: long })
      .catch((e: unknown) => e)
    expect(relayed).toMatchObject({ remoteName: 'InvalidArgumentError' })
    expect((await n.newWorker('echo', { key: 'k'.repeat(200) })).key).toHaveLength(200)
  })

  it('keeps a result cache in the node that survives a restart of the worker', async () => {
    const { node: n } = await node({ workers: { echo: { file: echo, restart: fast } } })
    await n.worker('echo').call('remember', { key: 'report', value: { rows: 3 } })
    expect(await n.worker('echo').askResult('report')).toEqual({ rows: 3 })
    expect(await n.worker('echo').askResult('missing')).toBeUndefined()
    const up = nextUp(n, 'echo')
    await n
      .worker('echo')
      .call('crash')
      .catch(() => {})
    await up
    expect(await n.worker('echo').askResult('report')).toEqual({ rows: 3 })
  })

  it('lets a worker call another worker through this.mesh', async () => {
    const { node: n } = await node({
      workers: { echo: { file: echo }, typed: { file: join(fixtures, 'typed-worker.ts') } },
    })
    expect(await n.worker('echo').call('relay', { worker: 'typed', method: 'add', arg: { a: 20, b: 22 } })).toBe(42)
    const error = await n
      .worker('echo')
      .call('relay', { worker: 'nobody', method: 'x' })
      .catch((e: unknown) => e)
    // The relay method let NoSuchWorkerError escape: its caller sees a RemoteError carrying that code.
    expect(error).toBeInstanceOf(RemoteError)
    expect((error as RemoteError).remoteCode).toBe('ERR_NO_SUCH_WORKER')
  })

  it('refuses new calls once stopping', async () => {
    const { node: n } = await node({ workers: { echo: { file: echo } } })
    const inFlight = n.worker('echo').call('sleep', 200)
    const stopping = n.stop()
    await expect(n.worker('echo').call('echo', 1)).rejects.toBeInstanceOf(NodeStoppingError)
    expect(await inFlight).toBe(200)
    await stopping
  })

  it('fails to start with ConfigError when a module exports no Worker, leaving nothing running', async () => {
    const n = new MeshNode({
      name: 'bad',
      logLevel: 'silent',
      workers: { nope: { file: join(fixtures, 'no-export.mjs') } },
    })
    const error = await n.start().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ConfigError)
    expect((error as Error).message).toMatch(/exports no Worker class/)
    expect(await n.workers()).toEqual([expect.objectContaining({ state: 'failed' })])
  })
})

describe('worker threads', () => {
  it('end when the node stops', async () => {
    const { node: n } = await node({ workers: { echo: { file: echo, instances: 2 } } })
    const down: WorkerInfo[] = []
    n.on('worker:down', (info) => down.push(info))
    await n.stop()
    // Peers are told the workers are stopping before they stop, so calls go elsewhere.
    expect(down.map((d) => d.state)).toEqual(['stopping', 'stopping'])
    expect((await n.workers()).every((w) => w.state === 'stopped')).toBe(true)
  })
})

void once
