import { UsageError } from './errors.js'

/**
 * How the CLI turns values into text: durations, round-trip times, timestamps and JSON.
 */

/** A duration as the largest two units: `45s`, `3m12s`, `5h04m`, `12d03h`. */
export function formatUptime(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000))
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`
  const h = Math.floor(m / 60)
  if (h < 24) return `${h}h${String(m % 60).padStart(2, '0')}m`
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`
}

/** Milliseconds with a precision that suits round trips: `0.42ms`, `3.1ms`, `120ms`. */
export function formatMs(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '-'
  if (ms < 1) return `${ms.toFixed(2)}ms`
  if (ms < 10) return `${ms.toFixed(1)}ms`
  return `${Math.round(ms)}ms`
}

/** Local wall-clock time with milliseconds, `14:03:07.412`, for event streams. */
export function formatClock(date: Date): string {
  const pad = (n: number, w = 2) => String(n).padStart(w, '0')
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`
}

/**
 * JSON for values that came over the mesh: BigInt as a bare JSON number (exact digits),
 * bytes as base64 strings, Date as ISO strings, Map/Set as object/array, `undefined` as null.
 */
export function toJson(value: unknown, indent?: number): string {
  const bigints = new Map<string, string>()
  const text = JSON.stringify(
    value === undefined ? null : value,
    function replacer(this: unknown, key: string, v: unknown) {
      // JSON.stringify calls toJSON before the replacer; read the raw value for Buffers.
      const raw = (this as Record<string, unknown>)[key]
      if (typeof raw === 'bigint') {
        const marker = `\u0000bigint${bigints.size}\u0000`
        bigints.set(marker, raw.toString())
        return marker
      }
      if (raw instanceof Uint8Array) return Buffer.from(raw).toString('base64')
      if (raw instanceof Map) return Object.fromEntries(raw)
      if (raw instanceof Set) return [...raw]
      return v
    },
    indent,
  )
  if (bigints.size === 0) return text
  // Markers are JSON strings: replace them, quotes included, by the bare digits.
  return text.replace(/"\\u0000bigint\d+\\u0000"/g, (quoted) => bigints.get(JSON.parse(quoted) as string) ?? quoted)
}

/**
 * Parses a JSON argument from the command line (`[json-arg]`, `--data`).
 * @throws UsageError with a hint, when it is not JSON.
 */
export function parseJsonArgument(text: string, what: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    const hint = /^[\w.-]+$/.test(text) ? `; a string needs JSON quotes: '"${text}"'` : ''
    throw new UsageError(`${what} is not valid JSON${hint}`)
  }
}
