/** Exit codes of the `wmesh` command. Scripts may rely on them; add, never renumber. */
export const ExitCode = {
  ok: 0,
  /** An unexpected error (a bug, or a system error such as EACCES). */
  unexpected: 1,
  /** Bad command line: unknown command or option, missing argument. */
  usage: 2,
  config: 3,
  notFound: 4,
  remote: 5,
  timeout: 6,
  nodeDown: 7,
} as const

/**
 * Exit code of each error `code`. Extend it as new error classes reach the CLI; codes
 * not listed exit with `ExitCode.unexpected`.
 */
export const exitCodes: Readonly<Record<string, number>> = {
  ERR_USAGE: ExitCode.usage,
  ERR_CONFIG: ExitCode.config,
  ERR_NO_SUCH_WORKER: ExitCode.notFound,
  ERR_NO_SUCH_METHOD: ExitCode.notFound,
  ERR_REMOTE: ExitCode.remote,
  ERR_TIMEOUT: ExitCode.timeout,
  ERR_NODE_DOWN: ExitCode.nodeDown,
}

/** The exit code for `error`, looked up by its `code` property. */
export function exitCodeFor(error: unknown): number {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined
  if (typeof code !== 'string' || !Object.hasOwn(exitCodes, code)) return ExitCode.unexpected
  return exitCodes[code] ?? ExitCode.unexpected
}
