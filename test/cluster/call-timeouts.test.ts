import { AbortError } from '@wmesh/core'
import type { MeshNode } from '@wmesh/mesh'
import { afterEach, describe, expect, it } from 'vitest'
import { nodePair } from '../support/cluster.js'
import { meshFixtures } from '../support/node-process.js'

const echo = { file: `${meshFixtures}echo-worker.mjs` }
const nodes: MeshNode[] = []
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()))
})

describe('a call to another node with a timeout that is not whole milliseconds', () => {
  it('is answered: the timeout crosses the wire rounded up, not refused as malformed', async () => {
    const { a } = await nodePair(nodes, { echo }, { extra: { directCalls: false }, waitFor: 'echo' })
    expect(await a.worker('echo').call('echo', 'whole', { timeout: 5000.5 })).toBe('whole')
    expect(await a.worker('echo').call('echo', 'huge', { timeout: Number.MAX_SAFE_INTEGER })).toBe('huge')
  })
})

describe('a call to another node with an AbortSignal', () => {
  it('ends with AbortError when the signal aborts, and the link and the worker keep serving', async () => {
    const { a } = await nodePair(nodes, { echo }, { extra: { directCalls: false }, waitFor: 'echo' })
    const controller = new AbortController()
    const pending = a.worker('echo').call('sleep', 3000, { timeout: 10_000, signal: controller.signal })
    controller.abort()
    const error = await pending.catch((e: unknown) => e)
    expect(error).toBeInstanceOf(AbortError)
    expect((error as Error).message).toMatch(/echo\.sleep on b:\S+ was aborted/)
    await expect(a.worker('echo').call('echo', 'x', { signal: controller.signal })).rejects.toBeInstanceOf(AbortError)
    expect(await a.worker('echo').call('echo', 'after')).toBe('after')
  })
})
