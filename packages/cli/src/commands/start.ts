import { WmeshError } from '@wmesh/core'
import type { Command } from 'commander'
import { fail } from '../fail.js'

/** Options of `wmesh start`, as the argument parser gives them. */
export interface StartOptions {
  config?: string
  name?: string
  listen?: string
  join?: string[]
  cluster?: string
  secretFile?: string
  workers?: string
  mdns?: boolean
  logLevel?: string
  advertise?: string
  interface?: string
  tls?: boolean
  verbose?: boolean
}

/** Extra time a node gets beyond its own shutdownTimeout before the process gives up on it. */
const STOP_GRACE_MS = 5_000

/**
 * Runs a node in the foreground until SIGINT, SIGTERM or a stop request from `wmesh stop`:
 * the first stops it gracefully and exits 0; a second signal exits 130 at once.
 */
export async function startNode(options: StartOptions): Promise<void> {
  const { loadNodeConfig, MeshNode, createNodeLogger } = await import('@wmesh/mesh')
  const { config } = await loadNodeConfig({
    configFile: options.config,
    flags: {
      name: options.name,
      cluster: options.cluster,
      listen: options.listen,
      join: options.join,
      secretFile: options.secretFile,
      workersDir: options.workers,
      mdns: options.mdns,
      logLevel: options.logLevel,
      advertise: options.advertise,
      interface: options.interface,
      tls: options.tls,
    },
  })
  const logger = createNodeLogger({ level: config.logLevel })
  const node = new MeshNode(config, { logger })
  const failOptions = { verbose: options.verbose === true }

  let stopping = false
  const started = node.start()
  const onSignal = (signal: NodeJS.Signals | 'stop-requested') => {
    if (stopping) {
      // A second stop request over the mesh changes nothing; a second signal exits at once.
      if (signal === 'stop-requested') return
      process.exit(130)
    }
    stopping = true
    logger.info({ signal }, 'stopping; send the signal again to exit at once')
    setTimeout(() => {
      fail(new WmeshError(`node did not stop within ${config.shutdownTimeout + STOP_GRACE_MS} ms; exiting`))
    }, config.shutdownTimeout + STOP_GRACE_MS).unref()
    // A signal during start waits for start to settle, so stop never races it.
    started
      .catch(() => {})
      .then(() => node.stop())
      .then(
        () => process.exit(0),
        (error: unknown) => fail(error, failOptions),
      )
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  // `wmesh stop` asks over the mesh; it means exactly what SIGTERM means.
  node.on('stop-requested', () => onSignal('stop-requested'))
  try {
    await started
  } catch (error) {
    if (!stopping) fail(error, failOptions)
  }
}

/** Collects a repeatable option's values. */
function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value]
}

/** Adds `wmesh start` to `program`. */
export function registerStart(program: Command): void {
  program
    .command('start')
    .description('run a node in the foreground (JSON logs when stdout is not a terminal)')
    .option('-c, --config <file>', 'config file (default: $WMESH_CONFIG, else ./wmesh.config.json if present)')
    .option('--name <name>', 'node name (default: the host name)')
    .option('--listen <host:port>', 'address for links from other nodes and clients (default 0.0.0.0:7946)')
    .option('--join <host:port>', 'static seed, for networks without multicast (repeatable)', collect)
    .option('--cluster <name>', 'cluster name (default wmesh)')
    .option('--secret-file <file>', 'file holding the cluster secret')
    .option('--workers <dir>', 'directory whose .js/.mjs/.ts files are loaded as workers')
    .option('--mdns', 'discover nodes with mDNS (the default)')
    .option('--no-mdns', 'do not use mDNS; rely on --join seeds')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (default info)')
    .option('--advertise <host>', 'address other hosts reach this node and its services at')
    .option('--interface <ip>', 'IPv4 address of the interface mDNS uses')
    .option('--tls', 'encrypt links with TLS 1.3 keyed from the secret (every node must agree)')
    .addHelpText(
      'after',
      '\nEach option overrides the environment (WMESH_NAME, WMESH_LISTEN, WMESH_JOIN, ...), which overrides the config file.',
    )
    .action(async (options: StartOptions, command: Command) => {
      await startNode({ ...options, verbose: command.optsWithGlobals().verbose === true })
    })
}
