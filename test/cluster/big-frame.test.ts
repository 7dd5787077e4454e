import { TimeoutError } from '@wmesh/core'
import type { MeshNode } from '@wmesh/mesh'
import { afterEach, describe, expect, it } from 'vitest'
import { nodePair } from '../support/cluster.js'
import { meshFixtures } from '../support/node-process.js'

const echo = { file: `${meshFixtures}echo-worker.mjs` }
const nodes: MeshNode[] = []
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()))
})

describe('a call whose frame exceeds the link limit', () => {
  it('fails at once with the real error, not TimeoutError after callTimeout', async () => {
    const { a } = await nodePair(nodes, { echo }, { waitFor: 'echo' })
    const started = Date.now()
    const error = await a
      .worker('echo')
      .call('echo', Buffer.alloc(17 * 1024 * 1024), { timeout: 3000 })
      .catch((e: unknown) => e)
    const took = Date.now() - started
    expect({ timeout: error instanceof TimeoutError, fast: took < 1000 }).toEqual({ timeout: false, fast: true })
  })
})

describe('a cast whose frame exceeds the link limit', () => {
  it('is refused at once with the real error, and the node keeps serving', async () => {
    const { a } = await nodePair(nodes, { echo }, { waitFor: 'echo' })
    const error = await a
      .worker('echo')
      .cast('echo', Buffer.alloc(17 * 1024 * 1024))
      .catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'ERR_FRAME_TOO_LARGE' })
    expect(await a.worker('echo').call('echo', 'still linked')).toBe('still linked')
  })
})
