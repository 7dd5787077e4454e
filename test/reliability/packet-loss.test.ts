import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { clearNetworkFaults, dropPackets, requireNft } from '../lab/faults.js'
import { describeCalls, expectNoWrongCalls, startTraffic, stopTraffic, summarize } from './calls.js'
import { echo, eventsSince, hold, type LabCluster, labCluster } from './lab-cluster.js'

// Scenario 4: 30% of the packets arriving at h3 are dropped (nft, inside h3's namespace)
// for LOSS_SECONDS, with the default failure bound (heartbeats 500 ms, timeout 3 s). The
// healthy hosts h1 and h2 must never be marked down by each other, and calls to both
// must still complete (those to h3 slower). TCP back-off stalls a link to h3 for seconds
// now and then (a resend lost again doubles the wait): the other nodes still hear h3, so
// the stalled link is replaced by a fresh one (relinked) instead of h3 going down. 60 s as
// the issue asks; WMESH_LOSS_SECONDS shortens it (the soak uses 20 s).
const LOSS_SECONDS = Number(process.env.WMESH_LOSS_SECONDS ?? 60)
const LOSS_PERCENT = 30
const TIMEOUT = 10_000

describe(`scenario 4: ${LOSS_PERCENT}% packet loss on one host`, () => {
  let cluster: LabCluster

  beforeAll(async () => {
    await requireNft()
    cluster = await labCluster({ hosts: 3, workers: (i) => (i === 0 ? {} : { echo }) })
    await cluster.probe.untilCallable('h3')
  }, 60_000)

  afterAll(async () => {
    await cluster?.destroy()
  })

  it(
    'marks no healthy host down, and calls to every host still complete',
    async () => {
      const { probe } = cluster
      const h3 = cluster.host(2)
      await startTraffic(probe, { rate: 40, timeout: TIMEOUT, nodes: ['h2', 'h3'] })
      const lossFrom = Date.now()
      await dropPackets(h3, LOSS_PERCENT)
      try {
        await hold(LOSS_SECONDS * 1000)
      } finally {
        await clearNetworkFaults(h3)
      }
      const { records, skipped } = await stopTraffic(probe, TIMEOUT)
      const during = records.filter((r) => r.t0 >= lossFrom)
      const toH2 = summarize(
        during.filter((r) => r.node === 'h2'),
        TIMEOUT,
      )
      const toH3 = summarize(
        during.filter((r) => r.node === 'h3'),
        TIMEOUT,
        skipped,
      )
      // "is down" lines by observer: h1 and h2 are healthy; h3 is the lossy one.
      const downLines = cluster.nodes.map((n) =>
        n.lines
          .filter((l) => / is down: /.test(String(l.msg)) && Number(l.time) >= lossFrom)
          .map((l) => `${n.name}: ${l.peer}`),
      )
      const healthyDownHealthy = downLines
        .slice(0, 2)
        .flat()
        .filter((l) => /: h[12]:/.test(l))
      const h3Flaps = eventsSince(probe, lossFrom, (l) => l.event === 'node:down' && l.name === 'h3').length
      const relinks = cluster.nodes.flatMap((n) =>
        n.lines.filter((l) => /^relinked with .* at its request/.test(String(l.msg)) && Number(l.time) >= lossFrom),
      ).length
      console.log(
        `[scenario 4] loss=${LOSS_PERCENT}% on h3 for ${LOSS_SECONDS}s; h3 marked down ${h3Flaps}x (seen at h1); ` +
          `stalled links replaced ${relinks}x; ` +
          `down lines (observer: peer)=[${downLines.flat().join(', ')}]; to h2: ${describeCalls(toH2)}; ` +
          `to h3: ${describeCalls(toH3)}`,
      )
      expect(healthyDownHealthy, 'a healthy host marked another healthy host down').toEqual([])
      expect(eventsSince(probe, lossFrom, (l) => l.event === 'node:down' && l.name !== 'h3')).toEqual([])
      expect(toH2.made - toH2.ok, 'calls to the healthy h2 that did not return their value').toBe(0)
      for (const s of [toH2, toH3]) {
        expectNoWrongCalls(s)
      }
      // Slower, but they complete: calls to the lossy host return their value, but for
      // those already sent on a connection that then stalls past their timeout (a TCP
      // stall of 10 s or more; the fresh link takes every call after). Typically all of
      // them; once 88.6% (see README).
      expect(toH3.ok, 'calls to the lossy h3 that returned their value').toBeGreaterThanOrEqual(toH3.made * 0.85)
    },
    LOSS_SECONDS * 1000 + 60_000,
  )
})
