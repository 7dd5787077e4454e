import { NodeDownError, type NodeInfo } from '@wmesh/core'
import { connectMesh, createNodeLogger, type MeshClient } from '@wmesh/mesh'
import { type ClusterOptions, type ClusterSettings, resolveClusterSettings } from './cluster-options.js'
import { UsageError } from './errors.js'
import { Spinner } from './spinner.js'

/** An open connection to the cluster, for one command. */
export interface ClusterSession {
  client: MeshClient
  settings: ClusterSettings
}

/**
 * Finds the cluster, links with one of its nodes and waits until the client holds that
 * node's full view of the registry. A spinner on a terminal's stderr shows progress.
 *
 * @throws ConfigError (no secret), AuthenticationError (wrong secret), HandshakeError (wrong cluster),
 *   NodeDownError (no node found within --connect-timeout).
 */
export async function openCluster(options: ClusterOptions & { verbose?: boolean }): Promise<ClusterSession> {
  const settings = await resolveClusterSettings(options)
  const how = settings.join.length > 0 ? settings.join.join(', ') : 'mDNS'
  const spinner = new Spinner(`finding cluster "${settings.cluster}" via ${how}`).start()
  try {
    const client = await connectMesh({
      cluster: settings.cluster,
      secretFile: settings.secretFile,
      join: settings.join,
      mdns: settings.mdns,
      interface: settings.interface,
      tls: settings.tls,
      timeout: settings.connectTimeout,
      callTimeout: settings.callTimeout,
      name: 'wmesh-cli',
      // Client diagnostics only with --verbose, and never on stdout (that is for results).
      logger: createNodeLogger({ level: options.verbose ? 'debug' : 'silent', destination: process.stderr }),
    }).catch((error: unknown) => {
      throw explainConnectFailure(error, settings, how)
    })
    // connectMesh resolves once the linked node has sent its whole view of the registry.
    return { client, settings }
  } finally {
    spinner.stop()
  }
}

/**
 * Runs `fn` with an open cluster and closes it afterwards (so a `cast` has left before the
 * process exits).
 */
export async function withCluster<T>(
  options: ClusterOptions & { verbose?: boolean },
  fn: (session: ClusterSession) => Promise<T>,
): Promise<T> {
  const session = await openCluster(options)
  try {
    return await fn(session)
  } finally {
    await session.client.close()
  }
}

/** Adds what to check to a failure to reach the cluster. */
function explainConnectFailure(error: unknown, settings: ClusterSettings, how: string): unknown {
  if (!(error instanceof NodeDownError)) return error
  const check =
    settings.join.length > 0
      ? `check that a node listens at ${how}`
      : 'no node answered on mDNS; give --join HOST:PORT where multicast does not reach'
  return new NodeDownError(`${error.message}; ${check}`, { cause: error })
}

/**
 * Finds a node by name, full id (`name:incarnation`), or the incarnation's suffix as
 * `wmesh nodes` shows it.
 *
 * @throws NodeDownError when no node matches, UsageError when several do.
 */
export async function findNode(client: MeshClient, ref: string): Promise<NodeInfo> {
  const nodes = await client.nodes()
  const exact = nodes.filter((n) => n.id === ref || n.name === ref)
  const matches = exact.length > 0 ? exact : nodes.filter((n) => n.incarnation.endsWith(ref) && ref.length >= 4)
  if (matches.length === 1) return matches[0] as NodeInfo
  if (matches.length === 0) {
    const names = nodes.map((n) => n.name).sort()
    throw new NodeDownError(`no node "${ref}" in the cluster (nodes: ${names.join(', ') || 'none'})`)
  }
  throw new UsageError(`"${ref}" matches several nodes: ${matches.map((n) => n.id).join(', ')}; use the full id`)
}
