/**
 * `npm run bench`: wmesh on loopback beside baselines measured in the same run: one way
 * (casts, service traffic, the core server) against raw `net`; calls between two node
 * processes against raw and msgpack request/response and Moleculer; a node's startup time
 * and memory. Figures are medians of interleaved rounds (wmesh and its baselines take
 * turns within each round); ratios are what count on a shared machine.
 * usage: run.ts [one-way] [calls] [footprint]   (default: all; `npm run bench:calls` = calls)
 */
import { rawOneWay } from './baselines/raw-one-way.js'
import { RequestResponseBaseline } from './baselines/request-response.js'
import { codecRates } from './codec-rates.js'
import { coreOneWay } from './core-one-way.js'
import { callFigures, footprintFigures, INFLIGHT, MANY_WORKERS, ONE_WAY_SIZES, oneWayFigures } from './figures.js'
import type { RoundTrips } from './fixtures/closed-loop.mjs'
import { ROUNDS, WARMUP_MS, WINDOW_MS } from './knobs.js'
import { MeshCluster } from './mesh-cluster.js'
import type { OneWay } from './meter.js'
import { MoleculerPair } from './moleculer/pair.js'
import { SecretDir } from './node-files.js'
import { bareNodeFootprint, nodeFootprint } from './node-footprint.js'
import { Children } from './processes.js'
import { computeFigure, type FigureSpec, printTable, Series, writeResults } from './report.js'
import { SenderProcess } from './sender-process.js'

const SECTIONS = ['one-way', 'calls', 'footprint'] as const
type Section = (typeof SECTIONS)[number]

function chosenSections(): Set<Section> {
  const args = process.argv.slice(2)
  const unknown = args.filter((a) => !SECTIONS.includes(a as Section))
  if (unknown.length > 0) throw new Error(`unknown section ${unknown.join(', ')}; choose from ${SECTIONS.join(', ')}`)
  return new Set(args.length > 0 ? (args as Section[]) : SECTIONS)
}

/** Runs `fn` and notes on stderr how long it took, so a slow part of a run shows. */
async function timed(label: string, fn: () => Promise<void>): Promise<void> {
  const started = performance.now()
  await fn()
  process.stderr.write(` ${label} ${((performance.now() - started) / 1000).toFixed(1)}s`)
}

/** Runs `steps` in order on even rounds and reversed on odd ones, so drift hits wmesh and its baselines alike. */
async function interleaved(round: number, steps: Array<() => Promise<void>>): Promise<void> {
  for (const step of round % 2 === 0 ? steps : [...steps].reverse()) await step()
}

const load = { warmupMs: WARMUP_MS, windowMs: WINDOW_MS }

/** One round of one-way figures: raw, the core server, casts and service traffic, per size. */
async function oneWayRound(round: number, series: Series, sender: SenderProcess, mesh: MeshCluster): Promise<void> {
  for (const size of ONE_WAY_SIZES) {
    const record = (system: string, r: OneWay) => {
      series.push(`oneway.${system}.${size}.msgs`, r.perSec)
      series.push(`oneway.${system}.${size}.bytes`, r.bytesPerSec)
    }
    const steps = [
      async () => record('raw', await rawOneWay(sender, size)),
      async () => record('core', await coreOneWay(sender, size)),
      async () => record('cast', await mesh.cast(size, WARMUP_MS, WINDOW_MS)),
    ]
    if (size === 100) steps.push(async () => record('service', await mesh.service(size, WARMUP_MS, WINDOW_MS)))
    await timed(`one-way ${size}`, () => interleaved(round, steps))
    await timed(`codec ${size}`, async () => {
      const codec = codecRates(size)
      series.push(`codec.encode.${size}`, codec.encode)
      series.push(`codec.decode.${size}`, codec.decode)
    })
  }
}

/** One round of round trips: both raw baselines, wmesh and Moleculer, per calls in flight. */
async function callsRound(
  round: number,
  series: Series,
  baselines: RequestResponseBaseline[],
  mesh: MeshCluster,
  peer: MoleculerPair,
): Promise<void> {
  for (const inflight of INFLIGHT) {
    const record = (system: string, r: RoundTrips) => {
      series.push(`calls.${system}.${inflight}.perSec`, r.perSec)
      series.push(`calls.${system}.${inflight}.p50`, r.p50)
      series.push(`calls.${system}.${inflight}.p99`, r.p99)
    }
    await timed(`calls ${inflight}`, () =>
      interleaved(round, [
        ...baselines.map((b) => async () => record(b.mode, await b.roundTrips({ inflight, ...load }))),
        async () => record('wmesh', await mesh.calls({ inflight, ...load })),
        async () => record('moleculer', await peer.roundTrips({ inflight, ...load })),
      ]),
    )
  }
}

/** One round of footprint figures: a bare node, a node with one worker, a node with several. */
async function footprintRound(series: Series, children: Children, dir: SecretDir): Promise<void> {
  await timed('footprint', async () => {
    const bare = await bareNodeFootprint(children)
    const one = await nodeFootprint(children, dir, 1)
    const many = await nodeFootprint(children, dir, MANY_WORKERS)
    series.push('footprint.bare.startupMs', bare.startupMs)
    series.push('footprint.bare.rss', bare.rssBytes)
    series.push('footprint.node1.startupMs', one.startupMs)
    series.push('footprint.node1.rss', one.rssBytes)
    series.push('footprint.perThread.rss', (many.rssBytes - one.rssBytes) / (MANY_WORKERS - 1))
  })
}

async function main(children: Children): Promise<void> {
  const sections = chosenSections()
  const series = new Series()
  const dir = new SecretDir()
  let cluster: MeshCluster | undefined
  let moleculer: MoleculerPair | undefined
  try {
    const sender = sections.has('one-way') ? new SenderProcess(children) : undefined
    const baselines = sections.has('calls')
      ? [new RequestResponseBaseline(children, 'raw'), new RequestResponseBaseline(children, 'msgpack')]
      : []
    if (sections.has('one-way') || sections.has('calls')) {
      cluster = new MeshCluster(children)
      await cluster.start()
    }
    if (sections.has('calls')) {
      moleculer = new MoleculerPair(children)
      await moleculer.start()
    }
    for (let round = 0; round < ROUNDS; round++) {
      process.stderr.write(`round ${round + 1}/${ROUNDS}:`)
      if (sender && cluster) await oneWayRound(round, series, sender, cluster)
      if (cluster && moleculer) await callsRound(round, series, baselines, cluster, moleculer)
      if (sections.has('footprint')) await footprintRound(series, children, dir)
      process.stderr.write('\n')
    }
  } finally {
    await moleculer?.stop()
    await cluster?.stop()
    await children.stopAll()
    dir.remove()
  }
  const specs: FigureSpec[] = [
    ...(sections.has('one-way') ? oneWayFigures() : []),
    ...(sections.has('calls') ? callFigures(moleculer?.version ?? '') : []),
    ...(sections.has('footprint') ? footprintFigures() : []),
  ]
  const figures = specs.map((spec) => computeFigure(spec, series))
  printTable(figures)
  const run = {
    rounds: ROUNDS,
    windowMs: WINDOW_MS,
    warmupMs: WARMUP_MS,
    sections: [...sections],
    moleculer: moleculer?.version,
  }
  console.log(`\nresults: ${writeResults(run, series, figures)}`)
}

const children = new Children()
try {
  await main(children)
} catch (error) {
  // Interrupted: the signal handler ends the children and then the process.
  if (!children.interrupted) throw error
}
