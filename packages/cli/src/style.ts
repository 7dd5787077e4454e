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
