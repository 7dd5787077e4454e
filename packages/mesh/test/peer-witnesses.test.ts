import { afterEach, describe, expect, it, vi } from 'vitest'
import type { ClusterMessage } from '../src/cluster-protocol.js'
import type { Link } from '../src/link.js'
import { PeerWitnesses } from '../src/peer-witnesses.js'

afterEach(() => {
  vi.useRealTimers()
})

const HEARTBEAT_TIMEOUT = 3000

/** Links as the witnesses see them: a peer id, whether closed, how long silent. */
function fakeLink(peerId: string, silentFor = 0, closed = false): Link {
  return { peerId, silentFor, closed } as unknown as Link
}

function witnesses(links: Link[]) {
  const sent: Array<{ to: string; message: ClusterMessage }> = []
  const map = new Map(links.map((l) => [l.peerId, l]))
  const w = new PeerWitnesses({
    links: map,
    send: (link, message) => sent.push({ to: link.peerId, message }),
    heartbeatTimeout: HEARTBEAT_TIMEOUT,
    heartbeatInterval: 500,
  })
  const link = (id: string) => map.get(id) as Link
  const idOf = (i: number) => ((sent[i] as { message: ClusterMessage }).message as { id: number }).id
  return { w, sent, link, idOf }
}

describe('PeerWitnesses', () => {
  it('asks only the other peers it hears itself, and is vouched for by the first that hears the peer', async () => {
    const { w, sent, link, idOf } = witnesses([
      fakeLink('silent:1', 4000),
      fakeLink('a:1'),
      fakeLink('b:1'),
      fakeLink('deaf:1', 3500),
      fakeLink('gone:1', 0, true),
    ])
    const answer = w.stillHeard('silent:1', 500, 3000)
    expect(sent.map((s) => s.to)).toEqual(['a:1', 'b:1'])
    expect(sent[0]?.message).toMatchObject({ t: 'suspect', peer: 'silent:1', silent: 3000 })
    w.onHeard(link('a:1'), { t: 'heard', id: idOf(0), heard: false })
    w.onHeard(link('b:1'), { t: 'heard', id: idOf(1), heard: true })
    expect(await answer).toBe(true)
  })

  it('is not vouched for when every asked peer says no', async () => {
    const { w, link, idOf } = witnesses([fakeLink('silent:1', 4000), fakeLink('a:1'), fakeLink('b:1')])
    const answer = w.stillHeard('silent:1', 500, 3000)
    w.onHeard(link('a:1'), { t: 'heard', id: idOf(0), heard: false })
    w.onHeard(link('b:1'), { t: 'heard', id: idOf(1), heard: false })
    expect(await answer).toBe(false)
  })

  it('counts an answer only from a peer it asked, once', async () => {
    vi.useFakeTimers()
    const { w, link, idOf } = witnesses([fakeLink('silent:1', 4000), fakeLink('a:1'), fakeLink('deaf:1', 3500)])
    let result: boolean | undefined
    void w.stillHeard('silent:1', 500, 3000).then((heard) => (result = heard))
    // deaf:1 was not asked (we do not hear it either); a:1 says no twice, then the silent peer vouches for itself.
    w.onHeard(link('deaf:1'), { t: 'heard', id: idOf(0), heard: true })
    w.onHeard(link('silent:1'), { t: 'heard', id: idOf(0), heard: true })
    await vi.advanceTimersByTimeAsync(0)
    expect(result).toBeUndefined()
    w.onHeard(link('a:1'), { t: 'heard', id: idOf(0), heard: false })
    await vi.advanceTimersByTimeAsync(0)
    expect(result).toBe(false)
  })

  it('gives up after its time when nobody answers, and says no at once with nobody to ask', async () => {
    vi.useFakeTimers()
    const { w } = witnesses([fakeLink('silent:1', 4000), fakeLink('a:1')])
    let result: boolean | undefined
    void w.stillHeard('silent:1', 500, 3000).then((heard) => (result = heard))
    await vi.advanceTimersByTimeAsync(499)
    expect(result).toBeUndefined()
    await vi.advanceTimersByTimeAsync(1)
    expect(result).toBe(false)
    expect(vi.getTimerCount()).toBe(0)
    const alone = witnesses([fakeLink('silent:1', 4000)])
    expect(await alone.w.stillHeard('silent:1', 500, 3000)).toBe(false)
    expect(alone.sent).toEqual([])
  })

  it('stops waiting for a peer asked that falls silent too: cut off from all, it is down at once', async () => {
    vi.useFakeTimers()
    const { w, link } = witnesses([fakeLink('silent:1', 4000), fakeLink('a:1', 2900)])
    let result: boolean | undefined
    void w.stillHeard('silent:1', 3000, 3000).then((heard) => (result = heard))
    await vi.advanceTimersByTimeAsync(100)
    expect(result).toBeUndefined()
    ;(link('a:1') as unknown as { silentFor: number }).silentFor = HEARTBEAT_TIMEOUT
    await vi.advanceTimersByTimeAsync(100)
    expect(result).toBe(false)
    expect(vi.getTimerCount()).toBe(0)
  })

  it('answers from its own link: yes if it heard the peer a heartbeat more recently than the asker did', () => {
    const { w, sent, link } = witnesses([
      fakeLink('asker:1'),
      fakeLink('fresh:1', 999),
      fakeLink('paused:1', 1000),
      fakeLink('stale:1', 3000),
    ])
    // The asker has not heard any of them for 1500 ms; a heartbeat is 500 ms.
    for (const [id, peer] of [
      [7, 'fresh:1'],
      [8, 'paused:1'],
      [9, 'stale:1'],
      [10, 'unknown:1'],
    ] as const)
      w.onSuspect(link('asker:1'), { t: 'suspect', id, peer, silent: 1500 })
    expect(sent.map((s) => s.message)).toEqual([
      { t: 'heard', id: 7, heard: true },
      { t: 'heard', id: 8, heard: false },
      { t: 'heard', id: 9, heard: false },
      { t: 'heard', id: 10, heard: false },
    ])
    expect(new Set(sent.map((s) => s.to))).toEqual(new Set(['asker:1']))
  })

  it('settles every open question with no on stop, leaving no timer', async () => {
    vi.useFakeTimers()
    const { w } = witnesses([fakeLink('silent:1', 4000), fakeLink('a:1')])
    const answer = w.stillHeard('silent:1', 500, 3000)
    w.stop()
    expect(await answer).toBe(false)
    expect(vi.getTimerCount()).toBe(0)
  })
})
