import { toJson } from './format.js'

/** Writes one line (or block) of text to stdout. */
export function print(text: string): void {
  process.stdout.write(`${text}\n`)
}

/** Writes `value` as one indented JSON document to stdout (`--json`). */
export function printJson(value: unknown): void {
  process.stdout.write(`${toJson(value, 2)}\n`)
}
