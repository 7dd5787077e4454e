import { access } from 'node:fs/promises'
import { resolve } from 'node:path'
import { MAX_TIMER_MS } from '@wmesh/core/internal'
import { ConfigError, loadNodeConfig } from '@wmesh/mesh'
import { type Command, Option } from 'commander'
import { UsageError } from './errors.js'

/** Options every command that talks to a cluster takes, as the argument parser gives them. */
export interface ClusterOptions {
  config?: string
  join?: string[]
  secretFile?: string
  cluster?: string
  interface?: string
  mdns?: boolean
  tls?: boolean
  connectTimeout?: number
  json?: boolean
}

/** How to reach the cluster, with every source (flags, environment, config file) applied. */
export interface ClusterSettings {
  cluster: string
  secretFile: string
  join: string[]
  mdns: boolean
  interface: string | undefined
  tls: boolean
  connectTimeout: number
  /** Default call timeout: the config file's callTimeout. */
  callTimeout: number
}

/** Default for --connect-timeout: long enough for mDNS (about 1 s) and a slow link. */
export const DEFAULT_CONNECT_TIMEOUT = 5000

/** Secret file `wmesh init` writes, used when nothing else names one. */
const INIT_SECRET_FILE = 'wmesh.secret'

/** Longest wait an option may ask for: timers take 2^31-1 ms, and calls add a second of slack. */
export const MAX_MILLISECONDS = MAX_TIMER_MS - 1000

/** Parses a positive number of milliseconds for an option. */
export function milliseconds(value: string): number {
  const n = Number(value)
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n <= 0) {
    throw new UsageError(`expected a positive number of milliseconds, got "${value}"`)
  }
  if (n > MAX_MILLISECONDS)
    throw new UsageError(`expected at most ${MAX_MILLISECONDS} ms (about 24 days), got ${value}`)
  return n
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value]
}

/** Adds the options that say how to find and join the cluster (and `--json` when `json`). */
export function addClusterOptions(command: Command, { json = true } = {}): Command {
  if (json) command.option('--json', 'print one JSON document instead of a table')
  return command
    .option('--join <host:port>', 'a node to join through, repeatable (default: $WMESH_JOIN, else mDNS)', collect)
    .option('--secret-file <file>', 'cluster secret (default: $WMESH_SECRET_FILE, the config, ./wmesh.secret)')
    .option('--cluster <name>', 'cluster name (default: $WMESH_CLUSTER, the config, else wmesh)')
    .option('-c, --config <file>', 'read the settings above from this node config (default ./wmesh.config.json)')
    .option('--interface <ip>', 'IPv4 address of the interface mDNS uses (default: $WMESH_INTERFACE, all)')
    .option('--no-mdns', 'never use mDNS; rely on --join')
    .option('--tls', 'the cluster uses TLS links (default: the config)')
    .addOption(
      new Option('--connect-timeout <ms>', 'give up finding the cluster after this long')
        .default(DEFAULT_CONNECT_TIMEOUT)
        .argParser(milliseconds),
    )
}

async function readable(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  )
}

/**
 * Works out how to reach the cluster: flags override `WMESH_*` variables, which override
 * the node config file (`--config`, `$WMESH_CONFIG` or `./wmesh.config.json`, as for
 * `wmesh start`). Run in a directory made by `wmesh init`, it needs no options at all.
 *
 * @throws ConfigError when no secret can be found or a setting is invalid.
 */
export async function resolveClusterSettings(options: ClusterOptions): Promise<ClusterSettings> {
  const { config, file } = await loadNodeConfig({
    configFile: options.config,
    flags: {
      cluster: options.cluster,
      join: options.join,
      secretFile: options.secretFile,
      // Only a --no-mdns counts; mDNS is otherwise decided below.
      mdns: options.mdns === false ? false : undefined,
    },
  })
  let secretFile = config.secretFile
  if (secretFile === undefined && (await readable(INIT_SECRET_FILE))) secretFile = resolve(INIT_SECRET_FILE)
  if (secretFile === undefined) {
    throw new ConfigError(
      'no cluster secret: give --secret-file FILE, set WMESH_SECRET_FILE, or run where `wmesh init` wrote wmesh.secret',
    )
  }
  let join = config.join
  // A node's own config with mDNS off and no seeds: reach that node on this machine.
  if (join.length === 0 && !config.mdns && file !== undefined) {
    const at = config.listen.lastIndexOf(':')
    const host = config.listen.slice(0, at)
    join = [`${host === '0.0.0.0' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host}:${config.listen.slice(at + 1)}`]
  }
  if (join.length === 0 && !config.mdns) {
    throw new UsageError('mDNS is off and no node to join was given: use --join HOST:PORT or set WMESH_JOIN')
  }
  return {
    cluster: config.cluster,
    secretFile,
    join,
    // Seeds, when given, replace mDNS: it is for networks where a seed is all there is.
    mdns: join.length === 0,
    interface: options.interface ?? (process.env.WMESH_INTERFACE || undefined) ?? config.interface,
    tls: options.tls ?? config.tls,
    connectTimeout: options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT,
    callTimeout: config.callTimeout,
  }
}
