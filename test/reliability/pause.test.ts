import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pause, resume } from '../lab/faults.js'
import { describeCalls, expectNoWrongCalls, startTraffic, stopTraffic, summarize } from './calls.js'
import { downAndBack, echo, eventsSince, hold, idOf, type LabCluster, labCluster } from './lab-cluster.js'

// Scenario 2: a host freezes (SIGSTOP) with its sockets open. The failure bound is the
// default heartbeatTimeout (3 s, heartbeats every 500 ms): a pause shorter than it must
// never mark the host down; a longer one must, within the bound, and the host comes back
// (same incarnation) after SIGCONT.
const HEARTBEAT_INTERVAL = 500
const HEARTBEAT_TIMEOUT = Number(process.env.WMESH_HEARTBEAT_TIMEOUT ?? 3000)
const SHORT_PAUSE = 1000
const LONG_PAUSE = 5000
const TIMEOUT = 8000

describe('scenario 2: pause (SIGSTOP) shorter and longer than the failure bound', () => {
  let cluster: LabCluster

  beforeAll(async () => {
    cluster = await labCluster({
      hosts: 3,
      workers: (i) => (i === 0 ? {} : { echo }),
      config: { heartbeatInterval: HEARTBEAT_INTERVAL, heartbeatTimeout: HEARTBEAT_TIMEOUT },
    })
    await cluster.probe.untilCallable('h3')
  }, 60_000)

  afterAll(async () => {
    await cluster?.destroy()
  })

  it(`a ${SHORT_PAUSE} ms pause is never a down; calls to the paused host complete once it resumes`, async () => {
    const { probe } = cluster
    const h3 = cluster.nodes[2]
    if (!h3) throw new Error('no h3')
    await startTraffic(probe, { rate: 50, timeout: TIMEOUT, nodes: ['h2', 'h3'] })
    const pausedAt = Date.now()
    pause(h3.child)
    await hold(SHORT_PAUSE)
    resume(h3.child)
    // "Never down" needs a window: wait past the point where the bound would have fired.
    await hold(HEARTBEAT_TIMEOUT + 1000)
    const { records, skipped } = await stopTraffic(probe, TIMEOUT)
    const s = summarize(records, TIMEOUT, skipped)
    const downs = eventsSince(probe, pausedAt, (l) => l.event === 'node:down')
    const downLogs = cluster.nodes.flatMap((n) =>
      n.lines.filter((l) => / is down: /.test(String(l.msg)) && Number(l.time) >= pausedAt),
    )
    console.log(
      `[scenario 2 short] pause=${SHORT_PAUSE}ms bound=${HEARTBEAT_TIMEOUT}ms downs seen by client=${downs.length} ` +
        `down lines in node logs=${downLogs.length}; ${describeCalls(s)}`,
    )
    expect(downs).toEqual([])
    expect(downLogs.map((l) => l.msg)).toEqual([])
    expect(s.made - s.ok, 'calls that did not return their value').toBe(0)
    expect(s.hung).toEqual([])
  }, 30_000)

  it(`a ${LONG_PAUSE} ms pause is a down within the bound, with calls failing typed, and the host is back after SIGCONT`, async () => {
    const { probe } = cluster
    const h3 = cluster.nodes[2]
    if (!h3) throw new Error('no h3')
    const h3Id = idOf(h3)
    await startTraffic(probe, { rate: 50, timeout: TIMEOUT, nodes: ['h2', 'h3'] })
    const pausedAt = Date.now()
    pause(h3.child)
    const {
      detection,
      back,
      undoneAt: resumedAt,
      failure,
    } = await downAndBack(
      probe,
      { id: h3Id, name: 'h3', from: pausedAt, holdMs: LONG_PAUSE, downWithin: LONG_PAUSE, upWithin: 15_000 },
      () => resume(h3.child),
    )
    const { records, skipped } = await stopTraffic(probe, TIMEOUT)
    const s = summarize(records, TIMEOUT, skipped)
    console.log(
      `[scenario 2 long] pause=${LONG_PAUSE}ms bound=${HEARTBEAT_TIMEOUT}ms detection=${detection}ms ` +
        `back after SIGCONT=${back}ms; ${describeCalls(s)}`,
    )
    if (failure) throw failure
    expect(detection).toBeGreaterThanOrEqual(HEARTBEAT_TIMEOUT - HEARTBEAT_INTERVAL)
    expect(detection).toBeLessThanOrEqual(HEARTBEAT_TIMEOUT + 2 * HEARTBEAT_INTERVAL)
    expectNoWrongCalls(s)
    // Calls to h3 stuck in the pause fail as NodeDownError at detection, not at their timeout.
    expect(s.failed.ERR_TIMEOUT ?? 0).toBe(0)
    // h2 never paused: every call to it returned its value.
    expect(records.filter((r) => r.node === 'h2' && !r.ok)).toEqual([])
    // After the host is back, calls to it work again.
    const after = records.filter((r) => r.node === 'h3' && r.t0 > resumedAt + back + 500)
    expect(after.length).toBeGreaterThan(0)
    expect(after.filter((r) => !r.ok)).toEqual([])
    const ids = await cluster.ids()
    expect([...ids.values()].sort()).toEqual(cluster.nodes.map(idOf).sort())
  }, 40_000)
})
