import { afterEach, describe, expect, it, vi } from 'vitest'
import type { NodeEntry } from '../src/cluster-protocol.js'
import type { Link } from '../src/link.js'
import { PeerDialer } from '../src/peer-dialer.js'
import { silent } from './helpers.js'

afterEach(() => {
  vi.useRealTimers()
})

/** A dialer whose dials fail until `answering` is set; records each dial and adopted link. */
function dialer() {
  const dials: string[] = []
  const adopted: Link[] = []
  const links = new Map<string, Link>()
  const state = { answering: false }
  const d = new PeerDialer(
    { id: 'self:1', listenHost: '127.0.0.1' },
    {
      logger: silent,
      links,
      registry: { get: () => undefined },
      self: () => ({ addresses: ['127.0.0.1'], port: 7000 }),
      dial: (host, port) => {
        dials.push(`${host}:${port}`)
        if (state.answering) return Promise.resolve({ peerId: 'b:1' } as Link)
        return Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ERR_CONNECT' }))
      },
      adopt: (link) => {
        adopted.push(link)
        links.set(link.peerId, link)
      },
      stopping: () => false,
    },
  )
  return { d, dials, adopted, links, state }
}

/** Runs the cluster's one-second redial tick `n` times, letting each dial settle. */
async function ticks(d: PeerDialer, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await vi.advanceTimersByTimeAsync(1000)
    d.redial()
    await vi.advanceTimersByTimeAsync(0)
  }
}

describe('PeerDialer', () => {
  it('redials a proposed seed that did not answer at its backoff, without waiting for discovery', async () => {
    vi.useFakeTimers()
    const { d, dials, adopted, links, state } = dialer()
    d.onCandidate({ host: '127.0.0.1', port: 7001, source: 'seed' })
    await vi.advanceTimersByTimeAsync(0)
    expect(dials).toEqual(['127.0.0.1:7001'])
    // Backoff 250 ms * 2^n with jitter: a few redials within the next seconds, not one per tick forever.
    await ticks(d, 4)
    const early = dials.length
    expect(early).toBeGreaterThanOrEqual(2)
    expect(early).toBeLessThanOrEqual(4)
    state.answering = true
    await ticks(d, 10)
    expect(adopted).toHaveLength(1)
    // Linked: no more dials, even when discovery proposes the address again, though the
    // node's entry (unknown here) does not list it: the dialer remembers where it led.
    const linkedAfter = dials.length
    await ticks(d, 40)
    for (let i = 0; i < 5; i++) d.onCandidate({ host: '127.0.0.1', port: 7001, source: 'seed' })
    await ticks(d, 2)
    expect(dials.length).toBe(linkedAfter)
    // Once that link is gone, a proposal dials again.
    links.clear()
    d.onCandidate({ host: '127.0.0.1', port: 7001, source: 'seed' })
    expect(dials.length).toBe(linkedAfter + 1)
  })

  it('stops redialing a candidate discovery no longer proposes', async () => {
    vi.useFakeTimers()
    const { d, dials } = dialer()
    d.onCandidate({ host: '10.0.0.9', port: 7001, source: 'seed' })
    await ticks(d, 70)
    const after = dials.length
    await ticks(d, 120)
    expect(dials.length).toBe(after)
  })

  it('never dials its own address', async () => {
    vi.useFakeTimers()
    const { d, dials } = dialer()
    d.onCandidate({ host: '127.0.0.1', port: 7000, source: 'seed' })
    await ticks(d, 3)
    expect(dials).toEqual([])
  })
})

describe('PeerDialer, lost peers', () => {
  const entryWith = (name: string, addresses: string[]) =>
    ({ id: `${name}:1`, name, addresses, port: 7001 }) as unknown as NodeEntry

  it("redials a few of a lost peer's addresses, and keeps a bounded list however many peers come and go", async () => {
    vi.useFakeTimers()
    const { d, dials } = dialer()
    const many = Array.from({ length: 64 }, (_, i) => `127.0.1.${i + 1}`)
    d.lost(entryWith('liar', many))
    await ticks(d, 1)
    expect(new Set(dials).size).toBe(4)
    for (let i = 0; i < 400; i++) {
      d.lost(
        entryWith(
          `liar${i}`,
          many.map((_, k) => `10.${i >> 8}.${i & 255}.${k + 1}`),
        ),
      )
    }
    dials.length = 0
    await ticks(d, 1)
    expect(new Set(dials).size).toBeLessThanOrEqual(1024)
  })
})
