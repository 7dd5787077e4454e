import { RemoteError, WmeshError } from '@wmesh/core'
import { ExitCode, exitCodeFor } from './exit-codes.js'
import { safeText } from './style.js'

/** Options of `fail` and `formatFailure`. */
export interface FailOptions {
  /** Also print the stack (and causes, and a remote error's own stack). */
  verbose?: boolean
}

/**
 * What `fail` prints for `error`: one line `wmesh: <message>`, plus the stack and causes
 * when verbose. An unexpected error gets a hint that --verbose shows more.
 */
export function formatFailure(error: unknown, options: FailOptions = {}): string {
  // A remote error's message is chosen by whoever threw it: no control characters reach stderr.
  const message = safeText((error instanceof Error ? error.message : String(error)).trim().replace(/\s*\n\s*/g, ' '))
  let text = `wmesh: ${message || 'failed'}`
  if (options.verbose) {
    // Stacks keep their lines; each line is shown safely (a remote stack is the thrower's text).
    const lines = (stack: string) =>
      stack
        .split('\n')
        .map((line) => safeText(line))
        .join('\n')
    for (let e: unknown = error; e instanceof Error; e = e.cause) {
      text += `\n${lines(e.stack ?? `${e.name}: ${e.message}`)}`
      if (e instanceof RemoteError && e.remoteStack) text += `\nremote stack:\n${lines(e.remoteStack)}`
    }
  } else if (!(error instanceof WmeshError) && exitCodeFor(error) === ExitCode.unexpected) {
    text += ' (run with --verbose for details)'
  }
  return text
}

/** Prints `error` as one line on stderr (see `formatFailure`) and exits with its mapped code. */
export function fail(error: unknown, options: FailOptions = {}): never {
  process.stderr.write(`${formatFailure(error, options)}\n`)
  process.exit(exitCodeFor(error))
}
