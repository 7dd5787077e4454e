import Table from 'cli-table3'
import { safeText, visibleWidth } from './style.js'

/** One column of a table. */
export interface Column {
  header: string
  /** Right-align (numbers, durations). */
  right?: boolean
  /** May be cut short (with …) when the table is too wide; the widest such column goes first. */
  shrink?: boolean
}

/** Space between columns. */
const GAP = 2
/** A shrinking column keeps at least this many characters. */
const MIN_SHRUNK = 8

/**
 * Width tables must fit: the terminal's when stdout is one, else 80 columns (what the
 * output will most likely be read in later).
 */
export function outputWidth(stream: NodeJS.WriteStream = process.stdout): number {
  return stream.isTTY === true && stream.columns > 0 ? stream.columns : 80
}

/**
 * Renders rows as a borderless table (kubectl style: a header line, columns two spaces
 * apart) no wider than `maxWidth`: the widest shrinkable columns are truncated first.
 * Header cells are passed already painted, if at all.
 */
export function renderTable(columns: Column[], rows: string[][], maxWidth = outputWidth()): string {
  // Cells hold strings from the cluster; only the CLI's own colours may reach the terminal.
  rows = rows.map((row) => row.map((cell) => safeText(cell, true)))
  const widths = columns.map((c, i) => Math.max(visibleWidth(c.header), ...rows.map((r) => visibleWidth(r[i] ?? ''))))
  const total = () => widths.reduce((a, b) => a + b, 0) + GAP * (columns.length - 1)
  while (total() > maxWidth) {
    let widest = -1
    for (let i = 0; i < columns.length; i++) {
      const w = widths[i] ?? 0
      if (columns[i]?.shrink && w > MIN_SHRUNK && (widest < 0 || w > (widths[widest] ?? 0))) widest = i
    }
    if (widest < 0) break
    widths[widest] = Math.max(MIN_SHRUNK, (widths[widest] ?? 0) - (total() - maxWidth))
  }
  const table = new Table({
    head: columns.map((c) => c.header),
    // cli-table3's widths include the padding (the last column's is trimmed below).
    colWidths: widths.map((w) => w + GAP),
    colAligns: columns.map((c) => (c.right ? 'right' : 'left')),
    wordWrap: false,
    truncate: '…',
    chars: {
      top: '',
      'top-mid': '',
      'top-left': '',
      'top-right': '',
      bottom: '',
      'bottom-mid': '',
      'bottom-left': '',
      'bottom-right': '',
      left: '',
      'left-mid': '',
      mid: '',
      'mid-mid': '',
      right: '',
      'right-mid': '',
      middle: '',
    },
    // Colour is ours to decide (see style.ts): no cli-table3 defaults.
    style: { 'padding-left': 0, 'padding-right': GAP, head: [], border: [], compact: true },
  })
  table.push(...rows)
  return table
    .toString()
    .split('\n')
    .map((line) => line.trimEnd())
    .join('\n')
}
