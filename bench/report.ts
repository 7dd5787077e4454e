/**
 * Turns per-round series into figures (medians, ratios against a baseline, targets, noise)
 * and prints them as one table; writes everything as JSON under bench/results/.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { fileURLToPath } from 'node:url'
import { NOISY } from './knobs.js'
import { formatRate, median, spread } from './stats.js'

/** Per-round values by key; every key gets one value per round, so rounds line up. */
export class Series {
  readonly #values = new Map<string, number[]>()

  push(key: string, value: number): void {
    this.#values.set(key, [...(this.#values.get(key) ?? []), value])
  }

  get(key: string): number[] {
    return this.#values.get(key) ?? []
  }

  toJSON(): Record<string, number[]> {
    return Object.fromEntries(this.#values)
  }
}

export type Unit = 'msgs/s' | 'B/s' | 'req/s' | 'ops/s' | 'ms' | 'bytes'

/** A goal: on the ratio to the baseline, or on the value itself. */
export interface Target {
  on: 'ratio' | 'value'
  op: '>=' | '<=' | '<'
  limit: number
}

export interface FigureSpec {
  section: string
  name: string
  key: string
  unit: Unit
  baseline?: { name: string; key: string }
  target?: Target
  /** The same measurement in another unit, shown in brackets beside the value. */
  also?: { key: string; unit: Unit }
}

export interface Figure extends FigureSpec {
  value: number
  alsoValue?: number
  rounds: number[]
  baselineValue?: number
  baselineRounds?: number[]
  /** Median of the per-round ratios (each round's wmesh figure over the same round's baseline). */
  ratio?: number
  met?: boolean
  noisy: boolean
}

export function computeFigure(spec: FigureSpec, series: Series): Figure {
  const rounds = series.get(spec.key)
  const figure: Figure = { ...spec, value: median(rounds), rounds, noisy: spread(rounds) > NOISY }
  if (spec.also) figure.alsoValue = median(series.get(spec.also.key))
  if (spec.baseline) {
    const base = series.get(spec.baseline.key)
    figure.baselineRounds = base
    figure.baselineValue = median(base)
    figure.ratio = median(rounds.map((v, i) => v / (base[i] as number)))
    figure.noisy ||= spread(base) > NOISY
  }
  if (spec.target) {
    const { on, op, limit } = spec.target
    const x = on === 'ratio' ? figure.ratio : figure.value
    if (x !== undefined && Number.isFinite(x))
      figure.met = op === '>=' ? x >= limit : op === '<=' ? x <= limit : x < limit
  }
  return figure
}

export function formatValue(value: number, unit: Unit): string {
  switch (unit) {
    case 'B/s':
      return `${(value / 1e6).toFixed(0)} MB/s`
    case 'ms':
      return value < 1 ? `${(value * 1000).toFixed(0)} us` : `${value.toFixed(value < 10 ? 2 : 0)} ms`
    case 'bytes':
      return `${(value / 1e6).toFixed(1)} MB`
    default:
      return `${formatRate(value)} ${unit}`.replace('  ', ' ')
  }
}

function formatTarget(target: Target, unit: Unit): string {
  return target.on === 'ratio' ? `${target.op} ${target.limit}x` : `${target.op} ${formatValue(target.limit, unit)}`
}

/** Prints the figures as one table, a section title above each group. */
export function printTable(figures: Figure[]): void {
  const header = ['figure', 'value', 'baseline', 'ratio', 'target', 'result', '']
  const rows: Array<string[] | string> = []
  let section = ''
  for (const f of figures) {
    if (f.section !== section) {
      section = f.section
      rows.push(section)
    }
    rows.push([
      `  ${f.name}`,
      formatValue(f.value, f.unit) +
        (f.also && f.alsoValue !== undefined ? ` (${formatValue(f.alsoValue, f.also.unit)})` : ''),
      f.baseline && f.baselineValue !== undefined ? `${f.baseline.name} ${formatValue(f.baselineValue, f.unit)}` : '',
      f.ratio === undefined ? '' : `${f.ratio.toFixed(2)}x`,
      f.target ? formatTarget(f.target, f.unit) : '',
      f.met === undefined ? '' : f.met ? 'met' : 'missed',
      f.noisy ? 'noisy' : '',
    ])
  }
  const cells = rows.filter((r): r is string[] => typeof r !== 'string')
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] as string).length)))
  const line = (row: string[]) =>
    row
      .map((c, i) => (i === 1 || i === 3 ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number)))
      .join('  ')
      .trimEnd()
  console.log(line(header))
  for (const r of rows) console.log(typeof r === 'string' ? r : line(r))
  console.log(
    '\nratio: median of per-round ratios (wmesh over the baseline measured in the same round); for latencies lower is better',
  )
  if (figures.some((f) => f.noisy))
    console.log(
      `noisy: its rounds (or its baseline's) differ by more than ${NOISY * 100}% of the median; rerun on a quieter machine for firm figures`,
    )
}

/** Writes the run as JSON under bench/results/ and returns the file name. */
export function writeResults(run: Record<string, unknown>, series: Series, figures: Figure[]): string {
  const dir = fileURLToPath(new URL('./results/', import.meta.url))
  mkdirSync(dir, { recursive: true })
  const date = new Date().toISOString()
  const file = `${dir}bench-${date.replace(/[:.]/g, '-')}.json`
  const body = { date, node: process.version, cpus: cpus().length, ...run, figures, series }
  writeFileSync(file, `${JSON.stringify(body, null, 2)}\n`)
  return file
}
