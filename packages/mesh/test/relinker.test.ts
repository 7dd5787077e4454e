import { EventEmitter } from 'node:events'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { ClusterMessage, NodeEntry } from '../src/cluster-protocol.js'
import type { Link } from '../src/link.js'
import { Relinker } from '../src/relinker.js'
import { silent } from './helpers.js'

afterEach(() => {
  vi.useRealTimers()
})

const RETRY = 1000
const LINGER = 4000

/** The parts of a Link the relinker uses. */
class FakeLink extends EventEmitter {
  closed = false
  silentFor = 0
  readonly sent: ClusterMessage[] = []
  constructor(
    readonly peerId: string,
    readonly role: 'dialer' | 'acceptor' = 'dialer',
    readonly remoteAddress = '10.0.0.2',
  ) {
    super()
  }
  close(): void {
    if (this.closed) return
    this.closed = true
    this.emit('close', undefined)
  }
  /** The peer's first (or next) message arrives. */
  receive(message: ClusterMessage): void {
    this.emit('message', message)
  }
}

const asLink = (l: FakeLink) => l as unknown as Link

function entry(id: string, addresses = ['10.0.0.2']): NodeEntry {
  const [name, incarnation] = id.split(':') as [string, string]
  return { id, name, incarnation, startedAt: 0, version: '0', addresses, port: 7946, rev: 1, workers: [], services: [] }
}

/** A relinker for node `self`, whose dials resolve or fail as the test says. */
function relinker(self: string, peer: string, entries: NodeEntry[] = [entry(peer)]) {
  const links = new Map<string, Link>()
  const installed: Array<{ link: FakeLink; first: unknown[] }> = []
  const adopted: FakeLink[] = []
  const settled: Array<{ link: FakeLink; first: unknown }> = []
  const dials: Array<{ host: string; port: number; resolve(l: FakeLink): void; reject(e: Error): void }> = []
  const r = new Relinker({
    logger: silent,
    id: self,
    links,
    registry: { get: (id) => entries.find((e) => e.id === id) },
    dial: (host, port) =>
      new Promise<Link>((resolve, reject) => dials.push({ host, port, resolve: (l) => resolve(asLink(l)), reject })),
    install: (link, ...first) => {
      links.set(link.peerId, link)
      installed.push({ link: link as unknown as FakeLink, first })
    },
    adopt: (link) => adopted.push(link as unknown as FakeLink),
    settleDuplicate: (link, first) => settled.push({ link: link as unknown as FakeLink, first }),
    send: (link, message) => (link as unknown as FakeLink).sent.push(message),
    lingerMs: LINGER,
    retryMs: RETRY,
    stopping: () => false,
  })
  const old = new FakeLink(peer)
  links.set(peer, asLink(old))
  /** Lets promise continuations (a dial's result) run. */
  const settle = () => new Promise<void>((resolve) => setImmediate(resolve))
  return { r, links, installed, adopted, settled, dials, old, settle }
}

describe('Relinker', () => {
  it('dials the address the silent link runs over, says relink, and moves on relinked; the old link lingers', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'performance'] })
    const t = relinker('a:1', 'b:1')
    t.r.stalled(asLink(t.old))
    expect(t.dials.map((d) => `${d.host}:${d.port}`)).toEqual(['10.0.0.2:7946'])
    const fresh = new FakeLink('b:1')
    t.dials[0]?.resolve(fresh)
    await vi.advanceTimersByTimeAsync(0)
    expect(fresh.sent).toEqual([{ t: 'relink' }])
    expect(t.links.get('b:1')).toBe(t.old)
    fresh.receive({ t: 'relinked' })
    expect(t.links.get('b:1')).toBe(fresh)
    expect(t.old.closed).toBe(false)
    expect(t.r.spare).toEqual([t.old])
    await vi.advanceTimersByTimeAsync(LINGER)
    expect(t.old.closed).toBe(true)
    expect(t.r.spare).toEqual([])
  })

  it('moves to the fresh link, handling its first message, when the peer took it as a plain link', async () => {
    const t = relinker('a:1', 'b:1')
    t.r.stalled(asLink(t.old))
    const fresh = new FakeLink('b:1')
    t.dials[0]?.resolve(fresh)
    await t.settle()
    const theirEntry = { t: 'entry', entry: entry('b:1') } as ClusterMessage
    fresh.receive(theirEntry)
    expect(t.installed).toEqual([{ link: fresh, first: [theirEntry] }])
    expect(fresh.closed).toBe(false)
  })

  it('takes a held link whose first message is relink: answers relinked, installs it, retires the old', () => {
    const t = relinker('a:1', 'b:1')
    const fresh = new FakeLink('b:1', 'acceptor')
    t.r.hold(asLink(fresh))
    fresh.receive({ t: 'relink' })
    expect(fresh.sent).toEqual([{ t: 'relinked' }])
    expect(t.links.get('b:1')).toBe(fresh)
    expect(t.r.spare).toEqual([t.old])
  })

  it('hands a held link whose first message is anything else to the simultaneous-dial rule', () => {
    const t = relinker('a:1', 'b:1')
    const other = new FakeLink('b:1', 'acceptor')
    t.r.hold(asLink(other))
    expect(t.r.spare).toEqual([other])
    other.receive({ t: 'want' })
    expect(t.settled).toEqual([{ link: other, first: { t: 'want' } }])
    expect(t.r.spare).toEqual([])
  })

  it('closes a held link that says nothing within its time', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    const t = relinker('a:1', 'b:1')
    const mute = new FakeLink('b:1', 'acceptor')
    t.r.hold(asLink(mute))
    await vi.advanceTimersByTimeAsync(5000)
    expect(mute.closed).toBe(true)
    expect(t.r.spare).toEqual([])
  })

  it('crossing relinks: the smaller id keeps its own (on the wire) and refuses the larger', async () => {
    const t = relinker('a:1', 'b:1')
    t.r.stalled(asLink(t.old))
    const mine = new FakeLink('b:1')
    t.dials[0]?.resolve(mine)
    await t.settle()
    const theirs = new FakeLink('b:1', 'acceptor')
    t.r.hold(asLink(theirs))
    theirs.receive({ t: 'relink' })
    expect(theirs.closed).toBe(true)
    expect(theirs.sent).toEqual([])
    mine.receive({ t: 'relinked' })
    expect(t.links.get('b:1')).toBe(mine)
  })

  it('crossing relinks: the larger id yields, closing its own and taking the smaller one', async () => {
    const t = relinker('b:1', 'a:1')
    t.r.stalled(asLink(t.old))
    const mine = new FakeLink('a:1')
    t.dials[0]?.resolve(mine)
    await t.settle()
    const theirs = new FakeLink('a:1', 'acceptor')
    t.r.hold(asLink(theirs))
    theirs.receive({ t: 'relink' })
    expect(mine.closed).toBe(true)
    expect(theirs.sent).toEqual([{ t: 'relinked' }])
    expect(t.links.get('a:1')).toBe(theirs)
  })

  it('refuses the larger id relink that arrives just after its own won (two connections, no order between them)', async () => {
    const t = relinker('a:1', 'b:1')
    t.r.stalled(asLink(t.old))
    const mine = new FakeLink('b:1')
    t.dials[0]?.resolve(mine)
    await t.settle()
    mine.receive({ t: 'relinked' })
    const late = new FakeLink('b:1', 'acceptor')
    t.r.hold(asLink(late))
    late.receive({ t: 'relink' })
    expect(late.closed).toBe(true)
    expect(t.links.get('b:1')).toBe(mine)
  })

  it("takes the larger id's relink while its own is only dialing, and drops its own when that dial ends", async () => {
    const t = relinker('a:1', 'b:1')
    t.r.stalled(asLink(t.old))
    const theirs = new FakeLink('b:1', 'acceptor')
    t.r.hold(asLink(theirs))
    theirs.receive({ t: 'relink' })
    expect(theirs.sent).toEqual([{ t: 'relinked' }])
    expect(t.links.get('b:1')).toBe(theirs)
    const late = new FakeLink('b:1')
    t.dials[0]?.resolve(late)
    await t.settle()
    expect(late.closed).toBe(true)
    expect(late.sent).toEqual([])
    expect(t.links.get('b:1')).toBe(theirs)
  })

  it('still says relink when its own old link ended during the dial, and adopts the fresh one', async () => {
    const t = relinker('a:1', 'b:1')
    t.r.stalled(asLink(t.old))
    t.links.delete('b:1')
    const fresh = new FakeLink('b:1')
    t.dials[0]?.resolve(fresh)
    await t.settle()
    expect(fresh.sent).toEqual([{ t: 'relink' }])
    expect(t.adopted).toEqual([fresh])
  })

  it('reinstates a retired link that is still heard when the new one closes, and not a silent one', async () => {
    const t = relinker('a:1', 'b:1')
    const fresh = new FakeLink('b:1', 'acceptor')
    t.r.hold(asLink(fresh))
    fresh.receive({ t: 'relink' })
    t.old.silentFor = RETRY
    expect(t.r.reinstate('b:1')).toBeUndefined()
    t.old.silentFor = 10
    expect(t.r.reinstate('b:1')).toBe(t.old)
    expect(t.r.spare).toEqual([])
    expect(t.r.reinstate('b:1')).toBeUndefined()
  })

  it('dials a stalled peer at most once per retryMs, and again after a failed dial', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'performance'] })
    const t = relinker('a:1', 'b:1')
    t.r.stalled(asLink(t.old))
    t.r.stalled(asLink(t.old))
    expect(t.dials).toHaveLength(1)
    t.dials[0]?.reject(new Error('connect ETIMEDOUT'))
    await vi.advanceTimersByTimeAsync(0)
    t.r.stalled(asLink(t.old))
    expect(t.dials).toHaveLength(1)
    await vi.advanceTimersByTimeAsync(RETRY)
    t.r.stalled(asLink(t.old))
    expect(t.dials).toHaveLength(2)
  })

  it('dials the link address when the entry lists none, and nothing without an entry or for a link not current', () => {
    const bare = relinker('a:1', 'b:1', [entry('b:1', [])])
    bare.r.stalled(asLink(bare.old))
    expect(bare.dials.map((d) => d.host)).toEqual(['10.0.0.2'])
    const unknown = relinker('a:1', 'b:1', [])
    unknown.r.stalled(asLink(unknown.old))
    expect(unknown.dials).toEqual([])
    const stale = relinker('a:1', 'b:1')
    stale.r.stalled(asLink(new FakeLink('b:1')))
    expect(stale.dials).toEqual([])
  })
})
