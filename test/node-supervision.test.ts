import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RemoteError, WorkerDownError } from '@wmesh/core'
import type { MeshClient } from '@wmesh/mesh'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { eventually, type LoopbackCluster, loopbackCluster } from './support/cluster.js'
import { meshFixtures } from './support/node-process.js'

// The node as users run it: a `wmesh start` process, driven from outside by a client.
describe('a node process supervising misbehaving workers', () => {
  let cluster: LoopbackCluster
  let client: MeshClient
  const fast = { initialDelay: 200, maxDelay: 1000 }

  beforeAll(async () => {
    const marker = join(mkdtempSync(join(tmpdir(), 'wmesh-flaky-')), 'marker')
    cluster = await loopbackCluster([
      {
        echo: { file: `${meshFixtures}echo-worker.mjs`, restart: fast },
        typed: { file: `${meshFixtures}typed-worker.ts` },
        flaky: { file: `${meshFixtures}flaky-create.mjs`, args: { marker }, restart: fast },
      },
    ])
    client = await cluster.client()
  }, 30_000)

  afterAll(async () => {
    await cluster?.stop()
  })

  const running = (name: string) =>
    eventually(
      client,
      async () => (await client.workers()).find((w) => w.name === name && w.state === 'running'),
      10_000,
      `${name} running`,
    )

  it('restarts a worker whose create threw, and it then answers', async () => {
    const flaky = await running('flaky')
    expect(flaky.restarts).toBeGreaterThanOrEqual(1)
    expect(flaky.lastExit).toMatch(/first create fails/)
    expect(await client.worker('flaky').call('ping')).toBe('pong')
  })

  it('turns a method that throws into RemoteError and keeps the worker', async () => {
    await expect(client.worker('echo').call('fail', 'bad')).rejects.toBeInstanceOf(RemoteError)
    expect(await client.worker('echo').call('echo', 1)).toBe(1)
  })

  it('survives a worker that crashes its thread or calls process.exit: the others answer, it comes back', async () => {
    const before = (await running('echo')).restarts
    await expect(client.worker('echo').call('crash')).rejects.toBeInstanceOf(WorkerDownError)
    expect(await client.worker('typed').call('add', { a: 1, b: 1 })).toBe(2)
    await eventually(
      client,
      async () =>
        (await client.workers()).some((w) => w.name === 'echo' && w.state === 'running' && w.restarts > before),
      10_000,
      'echo restarted',
    )
    await expect(client.worker('echo').call('exit', 4)).rejects.toBeInstanceOf(WorkerDownError)
    expect(await client.worker('typed').call('add', { a: 2, b: 2 })).toBe(4)
    const back = await eventually(
      client,
      async () =>
        (await client.workers()).find((w) => w.name === 'echo' && w.state === 'running' && w.restarts > before + 1),
      10_000,
      'echo restarted again',
    )
    expect(back.lastExit).toBe('exited with code 4')
    expect(cluster.nodes[0]?.child.exitCode).toBeNull()
  })

  it('does not let a worker blocking its thread for 2 s delay calls to the others', async () => {
    await running('echo')
    const blocked = client.worker('echo').call('block', 2000, { timeout: 10_000 })
    const started = Date.now()
    expect(await client.worker('typed').call('add', { a: 3, b: 4 })).toBe(7)
    expect(Date.now() - started).toBeLessThan(1000)
    expect(await blocked).toBe(2000)
  })
})
