import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { kill } from '../lab/faults.js'
import { describeCalls, expectNoWrongCalls, startTraffic, stopTraffic, summarize } from './calls.js'
import { echo, eventsSince, hold, idOf, type LabCluster, labCluster } from './lab-cluster.js'

// Scenario 1: crash and restart under traffic. A client on h1 calls echo on h2 and h3
// (pinned, and unpinned so the mesh picks) at a steady rate while h2 and h3 are SIGKILLed
// and restarted in turn.
const CYCLES = Number(process.env.WMESH_CRASH_CYCLES ?? 4)
const TIMEOUT = 2000

describe('scenario 1: crash and restart under traffic across namespaced hosts', () => {
  let cluster: LabCluster

  beforeAll(async () => {
    cluster = await labCluster({ hosts: 3, workers: (i) => (i === 0 ? {} : { echo }) })
  }, 60_000)

  afterAll(async () => {
    await cluster?.destroy()
  })

  it('every call returns its own value or fails typed within its timeout; none hangs; views hold only live incarnations', async () => {
    const { probe } = cluster
    await probe.untilCallable('h3')
    await startTraffic(probe, { rate: 100, timeout: TIMEOUT, nodes: [null, 'h2', 'h3'] })
    const detections: number[] = []
    const rejoins: number[] = []
    const restarts: Array<{ name: string; at: number }> = []
    let failure: unknown
    try {
      await hold(1000)
      for (let cycle = 0; cycle < CYCLES; cycle++) {
        const i = cycle % 2 === 0 ? 2 : 1
        const victim = cluster.host(i).name
        const old = cluster.nodes[i]
        if (!old) throw new Error(`no node on ${victim}`)
        const oldId = idOf(old)
        const killedAt = Date.now()
        await kill(old.child)
        const down = await probe.waitFor(
          (l) => l.event === 'node:down' && l.id === oldId && (l.at as number) >= killedAt,
          10_000,
          `${victim} down`,
        )
        detections.push((down.at as number) - killedAt)
        await hold(500)
        const restartedAt = Date.now()
        const fresh = await cluster.start(i)
        const freshId = idOf(fresh)
        const up = await probe.waitFor(
          (l) => l.event === 'node:up' && l.id === freshId,
          15_000,
          `${victim} back as a new incarnation`,
        )
        rejoins.push((up.at as number) - restartedAt)
        restarts.push({ name: victim, at: up.at as number })
        await hold(1000)
      }
    } catch (error) {
      failure = error
    }
    // Stop the traffic whatever happened, so a failed cycle still reports on the calls.
    const result = await stopTraffic(probe, TIMEOUT)
    if (failure) throw failure
    const s = summarize(result.records, TIMEOUT, result.skipped)
    console.log(
      `[scenario 1] cycles=${CYCLES} ${describeCalls(s)}; detection ms=${detections.join(',')}; ` +
        `rejoin ms (restart to up at h1)=${rejoins.join(',')}`,
    )
    expectNoWrongCalls(s)
    expect(s.duplicates).toBe(0)
    // The peer sees a SIGKILL as a closed link: detection is fast, not a heartbeat timeout.
    for (const d of detections) expect(d).toBeLessThan(1000)
    // Once a host is back (and a moment has passed for the view to spread), calls to it work.
    for (const { name, at } of restarts) {
      const after = result.records.filter((r) => r.node === name && r.t0 > at + 500 && r.t0 < at + 1000)
      expect(after.length).toBeGreaterThan(0)
      expect(after.filter((r) => !r.ok)).toEqual([])
    }
    // Unpinned calls go to a live instance: they rarely fail (only in the ms before the close is seen).
    const unpinned = result.records.filter((r) => r.node === null)
    expect(unpinned.filter((r) => !r.ok).length).toBeLessThanOrEqual(CYCLES * 3)
    // No node id twice, and only live incarnations in h1's view.
    const ids = await cluster.ids()
    expect([...ids.keys()].sort()).toEqual(['h1', 'h2', 'h3'])
    expect([...ids.values()].sort()).toEqual(cluster.nodes.map(idOf).sort())
    expect(eventsSince(probe, 0, (l) => l.event === 'node:down' && l.name === 'h1')).toEqual([])
  }, 120_000)
})
