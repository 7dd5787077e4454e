/** Frames of the progress spinner (braille dots, as most modern CLIs use). */
const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏']
/** Below this, work is done before a spinner would be noticed: show nothing (no flicker). */
const SHOW_AFTER_MS = 150
const FRAME_MS = 80

/**
 * A one-line progress spinner on a terminal's stderr while something slow runs (finding
 * the cluster). On anything that is not a terminal it does nothing, so piped output and
 * logs never see it. `stop()` erases the line; it is idempotent.
 */
export class Spinner {
  readonly #stream: NodeJS.WriteStream
  #text: string
  #frame = 0
  #timer: ReturnType<typeof setInterval> | undefined
  #delay: ReturnType<typeof setTimeout> | undefined
  #drawn = false

  constructor(text: string, stream: NodeJS.WriteStream = process.stderr) {
    this.#stream = stream
    this.#text = text
  }

  start(): this {
    if (this.#stream.isTTY !== true || this.#delay || this.#timer) return this
    this.#delay = setTimeout(() => {
      this.#delay = undefined
      this.#draw()
      this.#timer = setInterval(() => this.#draw(), FRAME_MS)
      this.#timer.unref()
    }, SHOW_AFTER_MS)
    this.#delay.unref()
    return this
  }

  /** Changes the text (shown from the next frame). */
  set text(text: string) {
    this.#text = text
  }

  stop(): void {
    clearTimeout(this.#delay)
    clearInterval(this.#timer)
    this.#delay = undefined
    this.#timer = undefined
    if (this.#drawn) {
      this.#stream.write('\r\x1b[2K')
      this.#drawn = false
    }
  }

  #draw(): void {
    const frame = FRAMES[this.#frame++ % FRAMES.length] ?? ''
    const width = Math.max(10, (this.#stream.columns || 80) - 1)
    this.#stream.write(`\r\x1b[2K${`${frame} ${this.#text}`.slice(0, width)}`)
    this.#drawn = true
  }
}
