import { stripVTControlCharacters, styleText } from 'node:util'

/** The styles the CLI uses; each maps to one `util.styleText` format. */
export type Style = 'bold' | 'dim' | 'green' | 'yellow' | 'red' | 'cyan'

/**
 * True when `stream` should get colour: it is a terminal and `NO_COLOR` is unset or empty
 * (https://no-color.org). Piped output never gets escape codes.
 */
export function colorEnabled(stream: NodeJS.WriteStream = process.stdout): boolean {
  return stream.isTTY === true && !process.env.NO_COLOR
}

/** Paints text for one output stream: styles only when that stream takes colour. */
export class Painter {
  readonly enabled: boolean

  constructor(stream: NodeJS.WriteStream = process.stdout) {
    this.enabled = colorEnabled(stream)
  }

  paint(style: Style, text: string): string {
    return this.enabled ? styleText(style, text) : text
  }
}

/** Columns `text` takes on a terminal (escape codes take none). */
export function visibleWidth(text: string): number {
  return [...stripVTControlCharacters(text)].length
}

/** A complete style sequence (SGR), which only colours text, or any control character. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const CONTROL = /\x1b\[[0-9;]*m|[\x00-\x1f\x7f-\x9f]/g

/**
 * `text` with every control character shown as an escape (`\n`, `\x1b`, ...), so a string
 * from the cluster (a worker key, a node name, an error message: anyone with the secret
 * chooses them) cannot move the cursor, retitle the terminal, clear the screen or forge a
 * line of output. `keepStyles` lets whole colour sequences through: the CLI's own paint.
 */
export function safeText(text: string, keepStyles = false): string {
  return text.replace(CONTROL, (match) => (match.length > 1 && keepStyles ? match : escapeControl(match)))
}

function escapeControl(match: string): string {
  const code = match.charCodeAt(0)
  const shown =
    code === 0x0a ? '\\n' : code === 0x0d ? '\\r' : code === 0x09 ? '\\t' : `\\x${code.toString(16).padStart(2, '0')}`
  return shown + match.slice(1)
}
