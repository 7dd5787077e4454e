/**
 * What the benchmark reports: each figure's series key, its baseline and its target.
 * Keys are what bench/run.ts records each round.
 */
import type { FigureSpec } from './report.js'

export const ONE_WAY_SIZES = [100, 64 * 1024] as const
export const INFLIGHT = [1, 16, 128] as const
/** Workers of the larger node in the footprint figures (the smaller one has 1). */
export const MANY_WORKERS = 5

const sizeName = (size: number) => (size >= 1024 ? `${size / 1024} KiB` : `${size} B`)

export function oneWayFigures(): FigureSpec[] {
  const section = 'one way, loopback (raw: frames copied into one buffer per write)'
  const figures: FigureSpec[] = []
  for (const size of ONE_WAY_SIZES) {
    const metric = size === 100 ? 'msgs' : 'bytes'
    const unit = size === 100 ? 'msgs/s' : 'B/s'
    const baseline = { name: 'raw', key: `oneway.raw.${size}.${metric}` }
    const also = (system: string) =>
      size === 100
        ? { key: `oneway.${system}.${size}.bytes`, unit: 'B/s' as const }
        : { key: `oneway.${system}.${size}.msgs`, unit: 'msgs/s' as const }
    const name = sizeName(size)
    figures.push(
      {
        section,
        name: `core worker server, ${name} (one process, no node)`,
        key: `oneway.core.${size}.${metric}`,
        unit,
        also: also('core'),
        baseline,
        target: size === 100 ? { on: 'ratio', op: '>=', limit: 0.3 } : undefined,
      },
      {
        section,
        name: `cast worker a -> worker b, ${name}`,
        key: `oneway.cast.${size}.${metric}`,
        unit,
        also: also('cast'),
        baseline,
        target: { on: 'ratio', op: '>=', limit: size === 100 ? 0.15 : 0.5 },
      },
    )
    if (size === 100)
      figures.push({
        section,
        name: `service sendData a -> b, ${name}`,
        key: `oneway.service.${size}.${metric}`,
        unit,
        also: also('service'),
        baseline,
      })
  }
  for (const size of ONE_WAY_SIZES)
    for (const op of ['encode', 'decode'] as const)
      figures.push({
        section,
        name: `msgpack ${op} ${sizeName(size)} (in process)`,
        key: `codec.${op}.${size}`,
        unit: 'ops/s',
      })
  return figures
}

/**
 * The "raw request/response baseline" is TESTING.md's anchor: length-prefixed
 * frames of one MessagePack value each way, coalesced writes, no mesh (`raw rpc`, keys
 * `calls.msgpack.*`). Targets are against it. The byte echo (`calls.raw.*`) sends the
 * bytes back without decoding anything: no RPC can carry a method and an id that way, so
 * it is shown as the ceiling, without a target.
 */
export function callFigures(moleculer: string): FigureSpec[] {
  const figures: FigureSpec[] = []
  for (const n of INFLIGHT) {
    const section = `call worker a -> worker b, ${n} in flight (raw rpc: length-prefixed msgpack, one value each way; echo: bytes back undecoded; Moleculer ${moleculer} TCP)`
    const against = (metric: 'perSec' | 'p50' | 'p99', system: 'raw' | 'msgpack' | 'moleculer') => ({
      name: SYSTEM_NAMES[system],
      key: `calls.${system}.${n}.${metric}`,
    })
    const key = (metric: string) => `calls.wmesh.${n}.${metric}`
    figures.push(
      {
        section,
        name: 'req/s vs raw rpc',
        key: key('perSec'),
        unit: 'req/s',
        baseline: against('perSec', 'msgpack'),
        target: n === 128 ? { on: 'ratio', op: '>=', limit: 0.5 } : undefined,
      },
      {
        section,
        name: 'req/s vs Moleculer',
        key: key('perSec'),
        unit: 'req/s',
        baseline: against('perSec', 'moleculer'),
        target: n === 128 ? { on: 'ratio', op: '>=', limit: 4 } : undefined,
      },
      { section, name: 'req/s vs echo', key: key('perSec'), unit: 'req/s', baseline: against('perSec', 'raw') },
      {
        section,
        name: 'p50 vs raw rpc',
        key: key('p50'),
        unit: 'ms',
        baseline: against('p50', 'msgpack'),
        target: n === 1 ? { on: 'ratio', op: '<=', limit: 2 } : undefined,
      },
      {
        section,
        name: 'p50 vs Moleculer',
        key: key('p50'),
        unit: 'ms',
        baseline: against('p50', 'moleculer'),
        target: n === 1 ? { on: 'ratio', op: '<', limit: 1 } : undefined,
      },
      { section, name: 'p50 vs echo', key: key('p50'), unit: 'ms', baseline: against('p50', 'raw') },
      { section, name: 'p99 vs raw rpc', key: key('p99'), unit: 'ms', baseline: against('p99', 'msgpack') },
      { section, name: 'p99 vs Moleculer', key: key('p99'), unit: 'ms', baseline: against('p99', 'moleculer') },
    )
  }
  return figures
}

const SYSTEM_NAMES = { raw: 'echo', msgpack: 'raw rpc', moleculer: 'Moleculer' } as const

export function footprintFigures(): FigureSpec[] {
  const section = 'node footprint (wmesh start, idle workers; baseline: a bare node process)'
  const bare = (metric: string) => ({ name: 'bare node', key: `footprint.bare.${metric}` })
  return [
    {
      section,
      name: 'spawn to first worker running (node log)',
      key: 'footprint.node1.startupMs',
      unit: 'ms',
      baseline: bare('startupMs'),
      target: { on: 'value', op: '<', limit: 1000 },
    },
    {
      section,
      name: 'RSS of an idle node with 1 worker',
      key: 'footprint.node1.rss',
      unit: 'bytes',
      baseline: bare('rss'),
      target: { on: 'value', op: '<', limit: 80e6 },
    },
    {
      section,
      name: `RSS per extra worker thread (${MANY_WORKERS} workers - 1) / ${MANY_WORKERS - 1}`,
      key: 'footprint.perThread.rss',
      unit: 'bytes',
      target: { on: 'value', op: '<', limit: 15e6 },
    },
  ]
}
