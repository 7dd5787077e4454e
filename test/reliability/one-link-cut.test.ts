import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { clearNetworkFaults, cutPair, requireNft } from '../lab/faults.js'
import { describeCalls, expectNoWrongCalls, startTraffic, stopTraffic, summarize } from './calls.js'
import { hold, type LabCluster, type Line, labCluster, views } from './lab-cluster.js'

// One link cut, the nodes well: h1 and h3 cannot reach each other, h2 reaches both (nft in
// h1's namespace). A node whose link falls silent asks the others before it marks the peer
// down; while one still hears it the link is kept, up to suspectTimeout. So a cut shorter
// than suspectTimeout marks nobody down and the calls across it complete once it heals
// (TCP retransmits them); a longer one marks h1 and h3 down to each other at
// suspectTimeout, and never h2. Short timings keep the test quick.
const HEARTBEAT_INTERVAL = 250
const HEARTBEAT_TIMEOUT = 1500
const SUSPECT_TIMEOUT = 5000
const SHORT_CUT = 3000
const LONG_CUT = SUSPECT_TIMEOUT + 2000
const TIMEOUT = 10_000
const CONVERGE_BOUND = 15_000

describe('one link cut while a third node hears both ends', () => {
  let cluster: LabCluster

  beforeAll(async () => {
    await requireNft()
    cluster = await labCluster({
      hosts: 3,
      config: {
        heartbeatInterval: HEARTBEAT_INTERVAL,
        heartbeatTimeout: HEARTBEAT_TIMEOUT,
        suspectTimeout: SUSPECT_TIMEOUT,
      },
    })
    await cluster.probe.untilCallable('h3')
  }, 60_000)

  afterAll(async () => {
    await cluster?.destroy()
  })

  /** Log lines of every node since `since` whose message matches, as `observer: message`. */
  const linesSince = (since: number, pattern: RegExp): string[] =>
    cluster.nodes.flatMap((n) =>
      n.lines
        .filter((l: Line) => pattern.test(String(l.msg)) && Number(l.time) >= since)
        .map((l) => `${n.name}: ${l.msg}`),
    )

  it(`shorter than suspectTimeout (${SHORT_CUT} ms): nobody is marked down, and the calls across it complete`, async () => {
    const { probe } = cluster
    const h1 = cluster.host(0)
    const h3 = cluster.host(2)
    await startTraffic(probe, { rate: 40, timeout: TIMEOUT, nodes: ['h2', 'h3'] })
    const cutAt = Date.now()
    await cutPair(h1, h3)
    try {
      await hold(SHORT_CUT)
    } finally {
      await clearNetworkFaults(h1)
    }
    // Calls made during the cut are answered once TCP retransmits them.
    await hold(HEARTBEAT_TIMEOUT)
    const { records, skipped } = await stopTraffic(probe, TIMEOUT)
    const s = summarize(
      records.filter((r) => r.t0 >= cutAt),
      TIMEOUT,
      skipped,
    )
    const kept = linesSince(cutAt, /but it is still heard/)
    const downs = linesSince(cutAt, / is down: /)
    console.log(
      `[scenario 7: one link cut, short] ${SHORT_CUT} ms, bound ${HEARTBEAT_TIMEOUT}/${SUSPECT_TIMEOUT} ms; kept: [${kept.join('; ')}]; ` +
        `downs: [${downs.join('; ')}]; ${describeCalls(s)}`,
    )
    expect(downs).toEqual([])
    // The cut outlasted heartbeatTimeout: both ends did suspect, and were told to wait.
    expect(kept.some((l) => l.startsWith('h1:'))).toBe(true)
    expect(kept.some((l) => l.startsWith('h3:'))).toBe(true)
    expectNoWrongCalls(s)
    expect(s.made - s.ok, 'calls that did not return their value').toBe(0)
  }, 60_000)

  it(`longer than suspectTimeout (${LONG_CUT} ms): h1 and h3 mark each other down at suspectTimeout, h2 nobody`, async () => {
    const h1 = cluster.host(0)
    const h3 = cluster.host(2)
    const cutAt = Date.now()
    await cutPair(h1, h3)
    try {
      await hold(LONG_CUT)
    } finally {
      await clearNetworkFaults(h1)
    }
    const downs = cluster.nodes.map((n) =>
      n.lines.filter((l) => / is down: /.test(String(l.msg)) && Number(l.time) >= cutAt),
    )
    const described = downs.flatMap((lines, i) => lines.map((l) => `h${i + 1} +${Number(l.time) - cutAt} ms: ${l.msg}`))
    console.log(`[scenario 7: one link cut, long] ${LONG_CUT} ms; downs: [${described.join('; ')}]`)
    const [atH1, atH2, atH3] = downs
    expect(atH2).toEqual([])
    for (const [observer, lines, peer] of [
      ['h1', atH1, 'h3'],
      ['h3', atH3, 'h1'],
    ] as const) {
      expect(lines, `${observer}'s downs`).toHaveLength(1)
      const line = lines?.[0] as Line
      expect(String(line.msg), observer).toMatch(new RegExp(`node ${peer}:\\S+ is down: `))
      // Silence counts from the last frame before the cut (at most a heartbeat earlier).
      const after = Number(line.time) - cutAt
      expect(after, `${observer} marked ${peer} down after ${after} ms`).toBeGreaterThanOrEqual(
        SUSPECT_TIMEOUT - HEARTBEAT_INTERVAL - 100,
      )
      expect(after, `${observer} marked ${peer} down after ${after} ms`).toBeLessThan(LONG_CUT)
    }
    // Healed: every node sees all three again.
    const from = Date.now()
    let last = ''
    while (Date.now() - from < CONVERGE_BOUND) {
      const all = await views(cluster.probe, 1000).catch(() => undefined)
      last = JSON.stringify([...(all ?? new Map()).entries()].map(([node, v]) => [node, v.nodes]))
      if (all?.size === 3 && [...all.values()].every((v) => v.nodes.length === 3)) return
      await hold(100)
    }
    throw new Error(`views did not heal within ${CONVERGE_BOUND} ms: ${last}`)
  }, 60_000)
})
