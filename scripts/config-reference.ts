/**
 * Writes docs/configuration.md, the configuration reference, from the code itself:
 *
 * - every key, type, constraint, default and description from `nodeConfigSchema`
 *   (packages/mesh/src/config.ts) through valibot's JSON Schema export (@valibot/to-json-schema);
 * - the environment variables `loadNodeConfig` reads, found by probing it: each candidate
 *   `WMESH_<KEY>` / `WMESH_<FLAG>` is set to a bad value in an empty directory, and it counts
 *   only if loading then fails naming that variable, or changes the configuration;
 * - the flags of `wmesh start`, from the CLI's own argument parser (`createProgram()`).
 *   A flag sets the key its same-named variable sets (`--secret-file` and
 *   `WMESH_SECRET_FILE`), which is how load-config.ts pairs them.
 *
 * usage: npm run docs:config            (builds, then writes docs/configuration.md)
 *        tsx scripts/config-reference.ts --check   (exit 1 if the file is stale)
 *
 * The same surface (keys, variables, commands and their options) is what the deploy tests
 * check every file under deploy/ against.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { isDeepStrictEqual } from 'node:util'
import { toJsonSchema } from '@valibot/to-json-schema'
import { createProgram } from '@wmesh/cli'
import { ConfigError, loadNodeConfig, type NodeConfig, nodeConfigSchema } from '@wmesh/mesh'

/** Where the reference is written, relative to the repository root. */
export const REFERENCE_FILE = 'docs/configuration.md'
export const repoRoot = fileURLToPath(new URL('..', import.meta.url))

/** The subset of JSON Schema that @valibot/to-json-schema emits for the config schema. */
export interface JsonSchema {
  type?: 'string' | 'integer' | 'number' | 'boolean' | 'array' | 'object'
  description?: string
  default?: unknown
  enum?: unknown[]
  pattern?: string
  minLength?: number
  minimum?: number
  maximum?: number
  items?: JsonSchema
  properties?: Record<string, JsonSchema>
  required?: string[]
  propertyNames?: JsonSchema
  additionalProperties?: JsonSchema | boolean
}

/** One configuration key, possibly nested (`workers.<name>.restart.maxDelay`). */
export interface ConfigKey {
  /** Path as written in the docs, e.g. `listen`, `workers.<name>.file`, `schedules[].cron`. */
  path: string
  /** Name within its object. */
  name: string
  /** The section (parent path) it belongs to; '' for top-level keys. */
  section: string
  schema: JsonSchema
  required: boolean
}

/** A `WMESH_*` variable that `loadNodeConfig` reads. */
export interface EnvVariable {
  name: string
  /** Top-level key it sets; undefined for the config-file variable. */
  key: string | undefined
  /** True when the variable names the config file (`WMESH_CONFIG`). */
  configFile: boolean
  /** How the text is turned into the key's value, e.g. 'comma-separated list'. */
  conversion: string | undefined
}

/** An option of a CLI command, as its argument parser declares it. */
export interface CliOption {
  /** As declared, e.g. `--listen <host:port>` or `-c, --config <file>`. */
  flags: string
  long: string | undefined
  short: string | undefined
  /** True when the option is followed by a value. */
  takesValue: boolean
  negate: boolean
  description: string
}

/** A CLI command and its options. */
export interface CliCommand {
  name: string
  aliases: string[]
  options: CliOption[]
}

/** Everything a deploy file may refer to: keys, variables, commands and flags. */
export interface ConfigSurface {
  /** Top-level JSON Schema of the node configuration (input side: defaults are optional). */
  schema: JsonSchema
  keys: ConfigKey[]
  defaults: NodeConfig
  variables: EnvVariable[]
  /** Options every command accepts (`--verbose`). */
  globalOptions: CliOption[]
  commands: Map<string, CliCommand>
  /** `wmesh start` flags and the key each sets (undefined for `--config`). */
  startFlags: Array<{ option: CliOption; key: string | undefined; variable: string | undefined }>
}

const PROBE = '!!wmesh-config-probe!!'

/** `secretFile` -> `SECRET_FILE`, `secret-file` -> `SECRET_FILE`. */
function screamingSnake(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/-/g, '_')
    .toUpperCase()
}

/** Lists keys depth-first in schema order, descending into objects, records and arrays of objects. */
function collectKeys(schema: JsonSchema, section: string, out: ConfigKey[]): void {
  const required = new Set(schema.required ?? [])
  for (const [name, child] of Object.entries(schema.properties ?? {})) {
    const path = section === '' ? name : `${section}.${name}`
    out.push({ path, name, section, schema: child, required: required.has(name) })
    const record = typeof child.additionalProperties === 'object' ? child.additionalProperties : undefined
    if (child.properties) collectKeys(child, path, out)
    else if (record?.properties) collectKeys(record, `${path}.<name>`, out)
    else if (child.type === 'array' && child.items?.properties) collectKeys(child.items, `${path}[]`, out)
  }
}

function describeOption(option: {
  flags: string
  long?: string
  short?: string
  required: boolean
  optional: boolean
  negate: boolean
  description: string
}): CliOption {
  return {
    flags: option.flags,
    long: option.long,
    short: option.short,
    takesValue: option.required || option.optional,
    negate: option.negate,
    description: option.description,
  }
}

/** What `loadNodeConfig` makes of `env`, or the ConfigError it throws. */
async function load(env: NodeJS.ProcessEnv, cwd: string): Promise<{ config: NodeConfig; file?: string } | ConfigError> {
  try {
    return await loadNodeConfig({ env, cwd })
  } catch (error) {
    if (error instanceof ConfigError) return error
    throw error
  }
}

/** Finds out whether `loadNodeConfig` reads `variable`, which key it sets and how it converts text. */
async function probeVariable(
  variable: string,
  dir: string,
  baseline: NodeConfig,
  keys: ConfigKey[],
): Promise<EnvVariable | undefined> {
  const result = await load({ [variable]: PROBE }, dir)
  let key: string | undefined
  if (result instanceof ConfigError) {
    const named = new RegExp(`^${variable}: key "([^".]+)`).exec(result.message)
    key = named?.[1]
    if (key === undefined) {
      // Read, but not as a key: is it the config file?
      const file = join(dir, 'probe.config.json')
      await writeFile(file, JSON.stringify({ cluster: 'probe-cluster' }))
      const loaded = await load({ [variable]: file }, dir)
      await rm(file)
      const configFile =
        !(loaded instanceof ConfigError) && loaded.file === file && loaded.config.cluster === 'probe-cluster'
      return configFile ? { name: variable, key: undefined, configFile, conversion: undefined } : undefined
    }
  } else {
    // Optional keys are absent from the baseline: look at the keys of both.
    key = [...new Set([...Object.keys(baseline), ...Object.keys(result.config)])].find(
      (k) => !isDeepStrictEqual(result.config[k as keyof NodeConfig], baseline[k as keyof NodeConfig]),
    )
    if (key === undefined) return undefined
  }
  const schema = keys.find((k) => k.path === key)?.schema
  return { name: variable, key, configFile: false, conversion: await probeConversion(variable, key, schema, dir) }
}

/** Describes how the variable's text becomes a list or a boolean, by trying values. */
async function probeConversion(
  variable: string,
  key: string,
  schema: JsonSchema | undefined,
  dir: string,
): Promise<string | undefined> {
  const loadWith = async (text: string) => {
    const result = await load({ [variable]: text }, dir)
    return result instanceof ConfigError ? result : result.config[key as keyof NodeConfig]
  }
  if (schema?.type === 'boolean') {
    const accepted: Record<'true' | 'false', string[]> = { true: [], false: [] }
    for (const text of ['1', 'true', 'yes', 'on', '0', 'false', 'no', 'off']) {
      const value = await loadWith(text)
      if (typeof value === 'boolean') accepted[`${value}`].push(`\`${text}\``)
    }
    return `${accepted.true.join(', ')} or ${accepted.false.join(', ')}`
  }
  if (schema?.type === 'array') {
    const pattern = schema.items?.pattern ? new RegExp(schema.items.pattern) : undefined
    const sample = ['host:7946', 'value'].find((s) => pattern?.test(s) ?? true) ?? 'value'
    const value = await loadWith(`${sample}, ${sample}`)
    if (Array.isArray(value) && value.length === 2 && value[1] === sample) return 'comma-separated list'
  }
  return undefined
}

/** Collects the configuration schema, the variables `loadNodeConfig` reads, and the CLI's commands and flags. */
export async function loadConfigSurface(): Promise<ConfigSurface> {
  const schema = toJsonSchema(nodeConfigSchema, {
    target: 'draft-2020-12',
    // Input side: a key with a default is optional. The actions JSON Schema has no word for are
    // left out: `finite` (JSON numbers are finite) and the schedule's cron-or-every check, which
    // the descriptions of `cron` and `every` state. Cast: JsonSchema is the subset read below.
    typeMode: 'input',
    ignoreActions: ['finite', 'check'],
  }) as JsonSchema
  const keys: ConfigKey[] = []
  collectKeys(schema, '', keys)
  const topLevel = keys.filter((k) => k.section === '')

  const program = createProgram()
  const globalOptions = program.options.map(describeOption)
  const commands = new Map<string, CliCommand>()
  for (const command of program.commands) {
    commands.set(command.name(), {
      name: command.name(),
      aliases: command.aliases(),
      options: command.options.map(describeOption),
    })
  }
  const start = commands.get('start')
  if (!start) throw new Error('the CLI has no `start` command')
  const flagName = (o: CliOption) => (o.long ?? '').replace(/^--(no-)?/, '')

  const candidates = new Set<string>()
  for (const key of topLevel) candidates.add(`WMESH_${screamingSnake(key.name)}`)
  for (const option of start.options) candidates.add(`WMESH_${screamingSnake(flagName(option))}`)

  const dir = await mkdtemp(join(tmpdir(), 'wmesh-config-reference-'))
  try {
    const baseline = await load({}, dir)
    if (baseline instanceof ConfigError) throw baseline
    const variables: EnvVariable[] = []
    for (const name of [...candidates].sort()) {
      const variable = await probeVariable(name, dir, baseline.config, keys)
      if (variable) variables.push(variable)
    }
    const startFlags = start.options.map((option) => {
      const variable = variables.find((v) => v.name === `WMESH_${screamingSnake(flagName(option))}`)
      const attribute = flagName(option).replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase())
      const key = variable ? variable.key : topLevel.some((k) => k.name === attribute) ? attribute : undefined
      return { option, key, variable: variable?.name }
    })
    return { schema, keys, defaults: baseline.config, variables, globalOptions, commands, startFlags }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** Escapes text for a Markdown table cell. */
function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ')
}

function code(text: string): string {
  return `\`${text}\``
}

function typeOf(schema: JsonSchema): string {
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(' | ')
  switch (schema.type) {
    case 'integer':
    case 'number': {
      const { minimum: min, maximum: max } = schema
      // Millisecond keys are capped at 2^31-1 (the timer limit); it is noise in the table.
      if (min !== undefined && max !== undefined && max < 2_147_483_647) return `${schema.type} ${min}–${max}`
      return min !== undefined ? `${schema.type} ≥ ${min}` : schema.type
    }
    case 'array':
      return schema.items ? `${typeOf(schema.items).replace(/ .*/, '')}[]` : 'array'
    case 'object':
      return typeof schema.additionalProperties === 'object' ? 'object (by name)' : 'object'
    case undefined:
      return 'any value'
    default:
      return schema.type
  }
}

function constraints(schema: JsonSchema): string {
  const rules: string[] = []
  const pattern = schema.pattern ?? schema.items?.pattern ?? schema.propertyNames?.pattern
  if (pattern) rules.push(`${schema.propertyNames ? 'Names match' : 'Matches'} ${code(pattern)}.`)
  if (schema.minLength) rules.push(`At least ${schema.minLength} character${schema.minLength > 1 ? 's' : ''}.`)
  return rules.join(' ')
}

function defaultOf(schema: JsonSchema): string {
  return schema.default === undefined ? '' : code(JSON.stringify(schema.default))
}

/** Renders docs/configuration.md. */
export async function renderConfigReference(surface?: ConfigSurface): Promise<string> {
  const s = surface ?? (await loadConfigSurface())
  const lines: string[] = []
  const push = (...more: string[]) => lines.push(...more)
  const configVariable = s.variables.find((v) => v.configFile)
  const configFlag = s.startFlags.find((f) => f.variable === configVariable?.name)

  const flagText = configFlag ? code(configFlag.option.flags.replace(/^-\w, /, '')) : 'a flag'
  const variableText = configVariable ? code(`$${configVariable.name}`) : 'a variable'
  push(
    '# Configuration reference',
    '',
    '<!-- Generated by `npm run docs:config` (scripts/config-reference.ts) from the schema in',
    '     packages/mesh/src/config.ts and the flags of `wmesh start`. Do not edit by hand:',
    '     a test fails when this file is stale. -->',
    '',
    `A node reads a config file (${flagText}, else ${variableText}, else \`./wmesh.config.json\` if`,
    'present), as JSON or as a JS/TS module whose default export is the object. Environment',
    'variables override the file, and flags override both. Durations are in milliseconds.',
    'Relative paths in the file resolve against its directory; paths from variables and flags',
    'against the working directory. A mistake stops `wmesh start` with one line naming the key,',
    'and exit code 3. Keys without a variable or flag are set in the file.',
    '',
    '## Node',
    '',
    '| key | type | default | variable | flag | description |',
    '|---|---|---|---|---|---|',
  )
  for (const key of s.keys.filter((k) => k.section === '')) {
    const variable = s.variables.find((v) => v.key === key.path)
    const flags = s.startFlags
      .filter((f) => f.key === key.path)
      .map((f) => code(f.option.flags.replace(/^-\w, /, '')))
      .join(', ')
    const description = [key.schema.description ?? '', constraints(key.schema)].filter(Boolean).join(' ')
    push(
      `| ${code(key.path)} | ${cell(typeOf(key.schema))} | ${cell(defaultOf(key.schema))} | ${variable ? code(variable.name) : ''} | ${cell(flags)} | ${cell(description)} |`,
    )
  }

  const sections = [...new Set(s.keys.map((k) => k.section))].filter((section) => section !== '')
  for (const section of sections) {
    const parent = s.keys.find((k) => k.path === section.replace(/(\.<name>|\[\])$/, ''))
    push('', `## ${code(section)}`, '')
    if (parent?.schema.description) push(parent.schema.description, '')
    const keys = s.keys.filter((k) => k.section === section)
    const anyRequired = keys.some((k) => k.required)
    push(
      `| key | type | default |${anyRequired ? ' required |' : ''} description |`,
      `|---|---|---|${anyRequired ? '---|' : ''}---|`,
    )
    for (const key of keys) {
      const description = [key.schema.description ?? '', constraints(key.schema)].filter(Boolean).join(' ')
      push(
        `| ${code(key.name)} | ${cell(typeOf(key.schema))} | ${cell(defaultOf(key.schema))} |${anyRequired ? ` ${key.required ? 'yes' : ''} |` : ''} ${cell(description)} |`,
      )
    }
  }

  push(
    '',
    '## Environment variables',
    '',
    'Read by `wmesh start` (and `loadNodeConfig`); an empty value counts as unset.',
    '',
    '| variable | sets | value |',
    '|---|---|---|',
  )
  for (const variable of s.variables) {
    const sets = variable.configFile ? 'the config file to read' : code(variable.key ?? '')
    const value = variable.configFile ? 'a path' : (variable.conversion ?? 'as in the file')
    push(`| ${code(variable.name)} | ${sets} | ${cell(value)} |`)
  }

  push('', '## Flags of `wmesh start`', '', '| flag | sets | description |', '|---|---|---|')
  for (const flag of s.startFlags) {
    const sets = flag.key ? code(flag.key) : flag.variable === configVariable?.name ? 'the config file to read' : ''
    push(`| ${code(flag.option.flags)} | ${sets} | ${cell(flag.option.description)} |`)
  }
  for (const option of s.globalOptions) {
    push(`| ${code(option.flags)} | (any \`wmesh\` command) | ${cell(option.description)} |`)
  }
  push('')
  return lines.join('\n')
}

async function main(): Promise<void> {
  const file = join(repoRoot, REFERENCE_FILE)
  const text = await renderConfigReference()
  if (process.argv.includes('--check')) {
    const current = await readFile(file, 'utf8').catch(() => '')
    if (current !== text) {
      process.stderr.write(`${REFERENCE_FILE} is stale: run \`npm run docs:config\`\n`)
      process.exit(1)
    }
    return
  }
  await writeFile(file, text)
  process.stdout.write(`wrote ${REFERENCE_FILE}\n`)
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main()
