import { WmeshError } from '@wmesh/core'
import { z } from 'zod'

/** The configuration is invalid; the message names the key and the problem. */
export class ConfigError extends WmeshError {
  override readonly code = 'ERR_CONFIG'
}

const milliseconds = z.number().int().min(0).max(2_147_483_647)
const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):\d{1,5}$/, 'expected HOST:PORT (IPv6 as [::1]:PORT)')
const workerName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/, 'expected a worker name: letters, digits, _ . - (max 128)')

/** Restart policy of a crashed worker: exponential backoff from `initialDelay` up to `maxDelay`. */
export const restartSchema = z
  .object({
    initialDelay: milliseconds.default(500).describe('First delay before restarting a crashed worker (ms).'),
    maxDelay: milliseconds.default(30_000).describe('Cap of the exponential backoff (ms).'),
    resetAfter: milliseconds
      .default(30_000)
      .describe('A worker up this long without crashing starts again from initialDelay (ms).'),
  })
  .strict()

/** Options of one worker, keyed by its name in `workers`. */
export const workerOptionsSchema = z
  .object({
    file: z
      .string()
      .min(1)
      .optional()
      .describe('Module that exports the Worker class (.js, .mjs or .ts), relative to the config file.'),
    instances: z
      .number()
      .int()
      .min(0)
      .max(256)
      .default(1)
      .describe('Unkeyed instances to run (BackgrounDRb pool_size); calls are spread across them.'),
    args: z.unknown().optional().describe('Passed to create(args) of every unkeyed instance.'),
    restart: restartSchema.optional().describe('Restart policy; defaults apply per key.'),
  })
  .strict()

/** A schedule: call `worker.method(data)` on a cron expression (with seconds) or a fixed interval. */
export const scheduleSchema = z
  .object({
    worker: workerName.describe('Worker to call.'),
    method: z.string().min(1).describe('Public method to call.'),
    key: z.string().optional().describe('Instance key, for a keyed instance.'),
    cron: z
      .string()
      .optional()
      .describe(
        'Cron expression; six fields with seconds first ("*/5 * * * * *") or five without. Node local time unless timezone is set.',
      ),
    every: z.number().int().min(1).optional().describe('Fixed interval in ms, instead of cron.'),
    timezone: z.string().optional().describe('IANA time zone for cron, e.g. "UTC" or "Europe/Berlin".'),
    data: z.unknown().optional().describe('Argument passed to the method.'),
    timeout: milliseconds.optional().describe('Call timeout (ms); default: the node callTimeout.'),
  })
  .strict()
  .refine((s) => (s.cron === undefined) !== (s.every === undefined), {
    message: 'set exactly one of cron or every',
  })

export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

/** Everything a node is configured with. Paths are resolved against the config file's directory. */
export const nodeConfigSchema = z
  .object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'expected letters, digits, _ . - (max 63), starting alphanumeric')
      .optional()
      .describe('Node name (default: the host name). The node id adds a random incarnation per start.'),
    cluster: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,63}$/, 'expected letters, digits, _ . - (max 63)')
      .default('wmesh')
      .describe('Cluster name; nodes only link with nodes of the same cluster.'),
    listen: hostPort.default('0.0.0.0:7946').describe('Address for links from other nodes and clients.'),
    join: z.array(hostPort).default([]).describe('Static seeds HOST:PORT, for networks without multicast.'),
    mdns: z.boolean().default(true).describe('Discover nodes with mDNS (_wmesh._tcp).'),
    secretFile: z
      .string()
      .optional()
      .describe('File holding the cluster secret (wmesh init writes one). Without it the node runs standalone.'),
    advertise: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Address other hosts reach this node (and its services) at; default: the listen host or the host addresses.',
      ),
    interface: z.string().min(1).optional().describe('IPv4 address of the network interface mDNS uses (default: all).'),
    tls: z
      .boolean()
      .default(false)
      .describe('Encrypt links with TLS 1.3, keyed from the cluster secret (no certificates).'),
    heartbeatInterval: milliseconds.min(50).default(500).describe('How often links send heartbeats (ms).'),
    heartbeatTimeout: milliseconds
      .min(100)
      .default(3000)
      .describe('A peer silent this long is marked down (ms); TCP close marks it down at once.'),
    directCalls: z
      .boolean()
      .default(true)
      .describe(
        "Workers call workers of other nodes over links of their own (each worker thread listens on an ephemeral port of the listen host); where those ports cannot be reached, calls go through the nodes' links.",
      ),
    workersDir: z
      .string()
      .optional()
      .describe('Directory whose .js/.mjs/.ts files are each loaded as a worker (default: none).'),
    workers: z
      .record(workerName, workerOptionsSchema)
      .default({})
      .describe('Workers by name: module file, instances, args, restart policy.'),
    schedules: z.array(scheduleSchema).default([]).describe('Calls made on a schedule.'),
    logLevel: z.enum(logLevels).default('info').describe('Log level of the node and its workers.'),
    shutdownTimeout: milliseconds
      .default(10_000)
      .describe('On SIGTERM/SIGINT, how long in-flight calls and worker stop hooks get (ms).'),
    callTimeout: milliseconds.default(10_000).describe('Default call timeout (ms).'),
  })
  .strict()

/** Configuration as written in a file or given to `new MeshNode` (defaults may be omitted). */
export type NodeConfigInput = z.input<typeof nodeConfigSchema>
/** Configuration with every default filled in. */
export type NodeConfig = z.output<typeof nodeConfigSchema>
export type WorkerOptions = z.output<typeof workerOptionsSchema>
export type ScheduleConfig = z.output<typeof scheduleSchema>
export type RestartPolicy = z.output<typeof restartSchema>

/** Formats the first problem of a failed parse as one line naming the key. */
export function describeConfigProblem(error: z.ZodError, source: string): string {
  const issue = error.issues[0]
  if (!issue) return `${source}: invalid configuration`
  const key = issue.path.length > 0 ? issue.path.map(String).join('.') : undefined
  let problem = issue.message
  if (issue.code === 'unrecognized_keys') {
    const keys = (issue as { keys: string[] }).keys
    const where = key ? `${key}.` : ''
    return `${source}: unknown key ${keys.map((k) => `"${where}${k}"`).join(', ')}`
  }
  if (issue.code === 'invalid_type') problem = `expected ${(issue as { expected: string }).expected}`
  return `${source}: ${key ? `key "${key}": ` : ''}${problem}`
}

/** Validates `input` and fills in defaults; throws `ConfigError` naming the key and problem. */
export function parseNodeConfig(input: unknown, source = 'configuration'): NodeConfig {
  const result = nodeConfigSchema.safeParse(input)
  if (!result.success) throw new ConfigError(describeConfigProblem(result.error, source))
  return result.data
}
