/**
 * Call records from the traffic probe, and the invariants every scenario checks on them:
 * each call returns its own value or fails with a typed error within its timeout; none
 * hangs, none returns another call's value.
 */
import { expect } from 'vitest'
import type { Probe } from '../support/probe.js'

export interface CallRecord {
  seq: number
  node: string | null
  t0: number
  t1: number
  ok: boolean
  code: string | null
  /** 'correct', or the JSON of a wrong value. */
  value: string | null
  hung: boolean
}

export interface TrafficInit {
  rate: number
  timeout: number
  nodes: Array<string | null>
  max?: number
  worker?: string
  method?: string
}

/** Codes a call may fail with while nodes crash, pause or are cut off (README, "Calling workers"). */
export const TYPED_CALL_FAILURES = new Set([
  'ERR_NODE_DOWN',
  'ERR_TIMEOUT',
  'ERR_WORKER_DOWN',
  'ERR_NO_SUCH_WORKER',
  'ERR_NODE_STOPPING',
])

export async function startTraffic(probe: Probe, init: TrafficInit): Promise<void> {
  const answer = await probe.request({ op: 'traffic', worker: 'echo', method: 'echo', max: 128, ...init })
  if (answer.ok !== true) throw new Error(`traffic did not start: ${JSON.stringify(answer)}`)
}

export async function stopTraffic(probe: Probe, timeout: number): Promise<{ records: CallRecord[]; skipped: number }> {
  const answer = await probe.request({ op: 'stop', grace: 2000 }, timeout + 10_000)
  if (answer.ok !== true) throw new Error(`traffic did not stop: ${JSON.stringify(answer)}`)
  return answer.value as { records: CallRecord[]; skipped: number }
}

export interface CallSummary {
  made: number
  ok: number
  failed: Record<string, number>
  wrong: CallRecord[]
  untyped: CallRecord[]
  late: CallRecord[]
  hung: CallRecord[]
  duplicates: number
  skipped: number
  p50: number
  p99: number
  max: number
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number
}

/** Sorts the records into outcomes; `slack` is how far past its timeout a failure may land. */
export function summarize(records: CallRecord[], timeout: number, skipped = 0, slack = 500): CallSummary {
  const all = records
  const failed: Record<string, number> = {}
  const seen = new Set<number>()
  let duplicates = 0
  for (const r of all) {
    if (seen.has(r.seq)) duplicates++
    seen.add(r.seq)
    if (!r.ok && r.code) failed[r.code] = (failed[r.code] ?? 0) + 1
  }
  const durations = all
    .filter((r) => r.ok)
    .map((r) => r.t1 - r.t0)
    .sort((a, b) => a - b)
  return {
    made: all.length,
    ok: all.filter((r) => r.ok && r.value === 'correct').length,
    failed,
    wrong: all.filter((r) => r.ok && r.value !== 'correct'),
    untyped: all.filter((r) => !r.ok && !r.hung && !TYPED_CALL_FAILURES.has(r.code ?? '')),
    late: all.filter((r) => !r.hung && r.t1 - r.t0 > timeout + slack),
    hung: all.filter((r) => r.hung),
    duplicates,
    skipped,
    p50: quantile(durations, 0.5),
    p99: quantile(durations, 0.99),
    max: durations.at(-1) ?? 0,
  }
}

/** The invariants of every call, whatever the fault: its own value or a typed failure, in time, never hung. */
export function expectNoWrongCalls(s: CallSummary): void {
  expect(s.wrong, 'calls that returned another value').toEqual([])
  expect(s.untyped, 'calls that failed untyped').toEqual([])
  expect(s.late, 'calls that settled after their timeout').toEqual([])
  expect(s.hung, 'calls that never settled').toEqual([])
}

/** One line of figures for the scenario's log. */
export function describeCalls(s: CallSummary): string {
  const failures =
    Object.entries(s.failed)
      .map(([code, n]) => `${code}=${n}`)
      .join(' ') || 'none'
  return (
    `calls=${s.made} ok=${s.ok} failed: ${failures}; wrong=${s.wrong.length} untyped=${s.untyped.length} ` +
    `late=${s.late.length} hung=${s.hung.length} dup=${s.duplicates} skipped=${s.skipped}; ` +
    `latency ok p50=${s.p50}ms p99=${s.p99}ms max=${s.max}ms`
  )
}

/** p50 and p99 in ms (two decimals) of `n` calls of `call` made one after another. */
export async function latencies(call: () => Promise<unknown>, n: number): Promise<{ p50: number; p99: number }> {
  const times: number[] = []
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await call()
    times.push(performance.now() - t0)
  }
  times.sort((a, b) => a - b)
  const at = (q: number) => Math.round(quantile(times, q) * 100) / 100
  return { p50: at(0.5), p99: at(0.99) }
}
