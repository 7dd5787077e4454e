import { WmeshError } from '@wmesh/core'
import { MAX_TIMER_MS } from '@wmesh/core/internal'
import * as v from 'valibot'

/** The configuration is invalid; the message names the key and the problem. */
export class ConfigError extends WmeshError {
  override readonly code = 'ERR_CONFIG'
}

/** An integer of at least `min`; NaN and ±Infinity are not numbers ("expected number"). */
function intFrom(min: number) {
  return v.pipe(v.number(), v.finite(), v.integer(), v.minValue(min))
}

const milliseconds = v.pipe(intFrom(0), v.maxValue(MAX_TIMER_MS))
const hostPort = v.pipe(
  v.string(),
  v.regex(/^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):\d{1,5}$/, 'expected HOST:PORT (IPv6 as [::1]:PORT)'),
  v.check((text) => Number(text.slice(text.lastIndexOf(':') + 1)) <= 65_535, 'expected a port from 0 to 65535'),
)
const workerName = v.pipe(
  v.string(),
  v.regex(/^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/, 'expected a worker name: letters, digits, _ . - (max 128)'),
)

/** A plain object, as JSON and object literals make: not an array, a Map, a Date or a class instance. */
function isPlainObject(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/**
 * `schema` (an object or record schema), except that only a plain object is taken for an
 * object: valibot reads `[]` as `{}` (open-circle/valibot#1630) and a Map as an empty
 * record; a config that gives a list or a Map where a map of keys belongs is a mistake to
 * report, not a config without workers.
 */
function objectOnly<TSchema extends v.GenericSchema>(schema: TSchema): TSchema {
  return v._standardSchema<TSchema>({
    ...schema,
    '~run'(dataset, config) {
      // Not an object at all: the schema itself reports the type.
      const value = dataset.value
      if (typeof value !== 'object' || value === null || isPlainObject(value)) return schema['~run'](dataset, config)
      v._addIssue(this, 'type', dataset, config)
      // Now a failure dataset; valibot's own schemas cast the same way after _addIssue.
      return dataset as unknown as v.OutputDataset<v.InferOutput<TSchema>, v.InferIssue<TSchema>>
    },
  })
}

/** An object of exactly these keys (an unknown key is an error), and not an array. */
function strictObject<const TEntries extends v.ObjectEntries>(entries: TEntries) {
  return objectOnly(v.strictObject(entries))
}

/** Restart policy of a crashed worker: exponential backoff from `initialDelay` up to `maxDelay`. */
export const restartSchema = strictObject({
  initialDelay: v.pipe(
    v.optional(milliseconds, 500),
    v.description('First delay before restarting a crashed worker (ms).'),
  ),
  maxDelay: v.pipe(v.optional(milliseconds, 30_000), v.description('Cap of the exponential backoff (ms).')),
  resetAfter: v.pipe(
    v.optional(milliseconds, 30_000),
    v.description('A worker up this long without crashing starts again from initialDelay (ms).'),
  ),
})

/** Options of one worker, keyed by its name in `workers`. */
export const workerOptionsSchema = strictObject({
  file: v.pipe(
    v.optional(v.pipe(v.string(), v.minLength(1))),
    v.description('Module that exports the Worker class (.js, .mjs or .ts), relative to the config file.'),
  ),
  instances: v.pipe(
    v.optional(v.pipe(intFrom(0), v.maxValue(256)), 1),
    v.description('Unkeyed instances to run (BackgrounDRb pool_size); calls are spread across them.'),
  ),
  args: v.pipe(v.optional(v.unknown()), v.description('Passed to create(args) of every unkeyed instance.')),
  restart: v.pipe(v.optional(restartSchema), v.description('Restart policy; defaults apply per key.')),
})

/** A schedule: call `worker.method(data)` on a cron expression (with seconds) or a fixed interval. */
export const scheduleSchema = v.pipe(
  strictObject({
    worker: v.pipe(workerName, v.description('Worker to call.')),
    method: v.pipe(v.string(), v.minLength(1), v.description('Public method to call.')),
    key: v.pipe(v.optional(v.string()), v.description('Instance key, for a keyed instance.')),
    cron: v.pipe(
      v.optional(v.string()),
      v.description(
        'Cron expression; six fields with seconds first ("*/5 * * * * *") or five without. Node local time unless timezone is set.',
      ),
    ),
    every: v.pipe(
      v.optional(v.pipe(intFrom(1), v.maxValue(MAX_TIMER_MS))),
      v.description('Fixed interval in ms, instead of cron.'),
    ),
    timezone: v.pipe(
      v.optional(v.string()),
      v.description('IANA time zone for cron (not every), e.g. "UTC" or "Europe/Berlin".'),
    ),
    data: v.pipe(v.optional(v.unknown()), v.description('Argument passed to the method.')),
    timeout: v.pipe(
      v.optional(milliseconds),
      v.description(
        'A run taking longer is reported as failed (ms; default: the node callTimeout); the next runs wait until it ends.',
      ),
    ),
  }),
  v.check((s) => (s.cron === undefined) !== (s.every === undefined), 'set exactly one of cron or every'),
)

export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

/** Everything a node is configured with. Paths are resolved against the config file's directory. */
export const nodeConfigSchema = strictObject({
  name: v.pipe(
    v.optional(
      v.pipe(
        v.string(),
        v.regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'expected letters, digits, _ . - (max 63), starting alphanumeric'),
      ),
    ),
    v.description('Node name (default: the host name). The node id adds a random incarnation per start.'),
  ),
  cluster: v.pipe(
    v.optional(
      v.pipe(v.string(), v.regex(/^[A-Za-z0-9_.-]{1,63}$/, 'expected letters, digits, _ . - (max 63)')),
      'wmesh',
    ),
    v.description('Cluster name; nodes only link with nodes of the same cluster.'),
  ),
  listen: v.pipe(
    v.optional(hostPort, '0.0.0.0:7946'),
    v.description('Address for links from other nodes and clients.'),
  ),
  join: v.pipe(
    v.optional(v.array(hostPort), []),
    v.description('Static seeds HOST:PORT, for networks without multicast.'),
  ),
  mdns: v.pipe(v.optional(v.boolean(), true), v.description('Discover nodes with mDNS (_wmesh._tcp).')),
  secretFile: v.pipe(
    v.optional(v.string()),
    v.description('File holding the cluster secret (wmesh init writes one). Without it the node runs standalone.'),
  ),
  advertise: v.pipe(
    v.optional(v.pipe(v.string(), v.minLength(1))),
    v.description(
      'Address other hosts reach this node (and its services) at; default: the listen host or the host addresses.',
    ),
  ),
  interface: v.pipe(
    v.optional(v.pipe(v.string(), v.minLength(1))),
    v.description('IPv4 address of the network interface mDNS uses (default: all).'),
  ),
  tls: v.pipe(
    v.optional(v.boolean(), false),
    v.description('Encrypt links with TLS 1.3, keyed from the cluster secret (no certificates).'),
  ),
  // The higher minimum comes after the milliseconds range: -1 is "expected >=0", as it always was.
  heartbeatInterval: v.pipe(
    v.optional(v.pipe(milliseconds, v.minValue(50)), 500),
    v.description('How often links send heartbeats (ms).'),
  ),
  heartbeatTimeout: v.pipe(
    v.optional(v.pipe(milliseconds, v.minValue(100)), 3000),
    v.description(
      'A peer silent this long is marked down (ms), unless other nodes still hear it (see suspectTimeout); TCP close marks it down at once.',
    ),
  ),
  suspectTimeout: v.pipe(
    v.optional(v.pipe(milliseconds, v.minValue(100))),
    v.description(
      'A link silent past heartbeatTimeout whose peer other nodes still hear (one stalled or cut connection, not a dead node) is replaced by a fresh one, and the peer stays up for this much silence (ms; default 5 x heartbeatTimeout; at most heartbeatTimeout turns asking and relinking off).',
    ),
  ),
  directCalls: v.pipe(
    v.optional(v.boolean(), true),
    v.description(
      "Workers call workers of other nodes over links of their own (each worker thread listens on an ephemeral port of the listen host); where those ports cannot be reached, calls go through the nodes' links.",
    ),
  ),
  workersDir: v.pipe(
    v.optional(v.string()),
    v.description('Directory whose .js/.mjs/.ts files are each loaded as a worker (default: none).'),
  ),
  workers: v.pipe(
    v.optional(objectOnly(v.record(workerName, workerOptionsSchema)), {}),
    v.description('Workers by name: module file, instances, args, restart policy.'),
  ),
  schedules: v.pipe(v.optional(v.array(scheduleSchema), []), v.description('Calls made on a schedule.')),
  logLevel: v.pipe(
    v.optional(
      v.picklist(logLevels, `Invalid option: expected one of ${logLevels.map((l) => `"${l}"`).join('|')}`),
      'info',
    ),
    v.description('Log level of the node and its workers.'),
  ),
  shutdownTimeout: v.pipe(
    v.optional(milliseconds, 10_000),
    v.description('On SIGTERM/SIGINT, how long in-flight calls and worker stop hooks get (ms).'),
  ),
  callTimeout: v.pipe(v.optional(milliseconds, 10_000), v.description('Default call timeout (ms).')),
})

/** Configuration as written in a file or given to `new MeshNode` (defaults may be omitted). */
export type NodeConfigInput = v.InferInput<typeof nodeConfigSchema>
/** Configuration with every default filled in. */
export type NodeConfig = v.InferOutput<typeof nodeConfigSchema>
export type WorkerOptions = v.InferOutput<typeof workerOptionsSchema>
export type ScheduleConfig = v.InferOutput<typeof scheduleSchema>
export type RestartPolicy = v.InferOutput<typeof restartSchema>

/** What `describeConfigProblem` reads of a schema: what it expects, and the schemas inside it. */
interface SchemaNode {
  expects?: string | null
  wrapped?: SchemaNode
  entries?: Record<string, SchemaNode>
  value?: SchemaNode
  item?: SchemaNode
}

/** The schema that `path` leads to within `nodeConfigSchema`, optional wrappers removed. */
function schemaAt(path: readonly v.IssuePathItem[]): SchemaNode | undefined {
  // Valibot schemas are plain objects typed apart by kind; this view only follows their links.
  let node: SchemaNode | undefined = nodeConfigSchema as SchemaNode
  for (const item of path) {
    while (node?.wrapped) node = node.wrapped
    if (item.type === 'array') node = node?.item
    else node = node?.entries?.[item.key as string] ?? node?.value
  }
  while (node?.wrapped) node = node.wrapped
  return node
}

/** The key path of an issue, `workers.echo.instances`, or undefined at the top level. */
function keyPath(path: readonly v.IssuePathItem[]): string | undefined {
  return path.length > 0 ? path.map((item) => String(item.key)).join('.') : undefined
}

/**
 * Says what is wrong with the value, in the words the config errors have always used
 * (users and scripts match on them), not valibot's own.
 */
function problemOf(issue: v.BaseIssue<unknown>): string {
  const origin = issue.path?.at(-1)?.origin
  switch (issue.type) {
    case 'regex':
      // A record key (a worker name) that fails its pattern.
      return origin === 'key' ? 'Invalid key in record' : issue.message
    case 'check':
    case 'picklist':
      return issue.message
    case 'finite':
      return 'expected number'
    case 'integer':
      return 'expected int'
    case 'min_value':
      return `Too small: expected number to be >=${issue.requirement}`
    case 'max_value':
      return `Too big: expected number to be <=${issue.requirement}`
    case 'min_length':
      return `Too small: expected string to have >=${issue.requirement} characters`
    case 'strict_object':
      // A required key that is missing reads as a value of the wrong type.
      return origin === 'key' ? `expected ${schemaAt(issue.path ?? [])?.expects}` : 'expected object'
    default:
      // Type mismatches: number, string, boolean, array, record.
      return `expected ${issue.type}`
  }
}

/** `"workers.w.x", "workers.w.y"`: every unknown key of the object an unknown-key issue is about. */
function unknownKeys(issue: v.BaseIssue<unknown>): string {
  // The path ends with the first unknown key; valibot stops there, the message names them all.
  const path = issue.path ?? []
  const object = (path.at(-1)?.input ?? {}) as Record<string, unknown>
  const declared = schemaAt(path.slice(0, -1))?.entries ?? {}
  const keys = Object.keys(object).filter((key) => !Object.hasOwn(declared, key))
  if (keys.length === 0) keys.push(String(path.at(-1)?.key))
  const parent = keyPath(path.slice(0, -1))
  return keys.map((key) => `"${parent ? `${parent}.` : ''}${key}"`).join(', ')
}

/**
 * Formats the first of `issues` (from validating against `nodeConfigSchema`) as one line
 * naming the key, e.g. `wmesh.config.json: key "workers.echo.instances": expected number`.
 */
export function describeConfigProblem(issues: readonly v.BaseIssue<unknown>[], source: string): string {
  const issue = issues[0]
  if (!issue) return `${source}: invalid configuration`
  if (issue.type === 'strict_object' && issue.expected === 'never')
    return `${source}: unknown key ${unknownKeys(issue)}`
  const key = keyPath(issue.path ?? [])
  return `${source}: ${key ? `key "${key}": ` : ''}${problemOf(issue)}`
}

/** Names valibot's records skip (a prototype-pollution guard): as worker names they would vanish silently. */
const RESERVED_KEYS = ['__proto__', 'constructor', 'prototype']

export type ConfigCheck =
  | { success: true; output: NodeConfig }
  | {
      success: false
      /** Top-level key the problem is in, if any. */
      key: string | undefined
      /** The problem as one line naming the key, after `source`. */
      describe(source: string): string
    }

/** Validates `input` and fills in defaults, or says what is wrong and where. */
export function checkNodeConfig(input: unknown): ConfigCheck {
  const workers = (input as { workers?: unknown } | null | undefined)?.workers
  const reserved =
    typeof workers === 'object' && workers !== null
      ? RESERVED_KEYS.find((name) => Object.hasOwn(workers, name))
      : undefined
  if (reserved !== undefined)
    return {
      success: false,
      key: 'workers',
      describe: (source) => `${source}: key "workers.${reserved}": ${reserved} cannot be a worker name`,
    }
  const result = v.safeParse(nodeConfigSchema, input)
  if (result.success) return { success: true, output: result.output }
  const first = result.issues[0].path?.[0]?.key
  return {
    success: false,
    key: typeof first === 'string' ? first : undefined,
    describe: (source) => describeConfigProblem(result.issues, source),
  }
}

/** Validates `input` and fills in defaults; throws `ConfigError` naming the key and problem. */
export function parseNodeConfig(input: unknown, source = 'configuration'): NodeConfig {
  const result = checkNodeConfig(input)
  if (!result.success) throw new ConfigError(result.describe(source))
  return result.output
}
