/** Exit codes of the `wmesh` command. Scripts may rely on them; add, never renumber. */
export const ExitCode = {
  ok: 0,
  /** An unexpected error (a bug, or a system error such as EACCES). */
  unexpected: 1,
  /** Bad command line: unknown command or option, missing argument, an argument that is not JSON. */
  usage: 2,
  /** Bad configuration, or no cluster secret to be found. */
  config: 3,
  /** No such worker, method, service or stored result. */
  notFound: 4,
  /** The called method threw (or its worker died while running it). */
  remote: 5,
  timeout: 6,
  /** The node is down or stopping, or no node of the cluster could be reached. */
  nodeDown: 7,
  /** A node refused our proof of the cluster secret: the secrets differ. */
  auth: 8,
  /** A node is in another cluster or speaks another protocol version. */
  wrongCluster: 9,
} as const

/**
 * Exit code of each error `code`. Extend it as new error classes reach the CLI; codes
 * not listed exit with `ExitCode.unexpected`.
 */
export const exitCodes: Readonly<Record<string, number>> = {
  ERR_USAGE: ExitCode.usage,
  ERR_INVALID_ARGUMENT: ExitCode.usage,
  ERR_CONFIG: ExitCode.config,
  ERR_NO_SUCH_WORKER: ExitCode.notFound,
  ERR_NO_SUCH_METHOD: ExitCode.notFound,
  ERR_NO_SUCH_SERVICE: ExitCode.notFound,
  ERR_NO_RESULT: ExitCode.notFound,
  ERR_REMOTE: ExitCode.remote,
  ERR_WORKER_DOWN: ExitCode.remote,
  ERR_TIMEOUT: ExitCode.timeout,
  ERR_NODE_DOWN: ExitCode.nodeDown,
  ERR_NODE_STOPPING: ExitCode.nodeDown,
  ERR_HANDSHAKE_TIMEOUT: ExitCode.nodeDown,
  ERR_AUTH: ExitCode.auth,
  ERR_HANDSHAKE: ExitCode.wrongCluster,
}

/** Codes that say more about a failure than the error wrapping them (e.g. why no node could be reached). */
const telling = new Set(['ERR_AUTH', 'ERR_HANDSHAKE'])

function codeOf(error: unknown): string | undefined {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined
  return typeof code === 'string' ? code : undefined
}

/**
 * The exit code for `error`, looked up by its `code` property. A wrapped authentication or
 * handshake failure (in the `cause` chain) wins over the wrapper's code, so "cannot reach
 * any node" caused by a wrong secret exits as an authentication failure.
 */
export function exitCodeFor(error: unknown): number {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = codeOf(e)
    if (code !== undefined && e !== error && telling.has(code)) return exitCodes[code] ?? ExitCode.unexpected
  }
  const code = codeOf(error)
  if (code === undefined || !Object.hasOwn(exitCodes, code)) return ExitCode.unexpected
  return exitCodes[code] ?? ExitCode.unexpected
}
