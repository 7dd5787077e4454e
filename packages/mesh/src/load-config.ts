import { constants } from 'node:fs'
import { access, readFile, stat } from 'node:fs/promises'
import { dirname, extname, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { ConfigError, checkNodeConfig, type NodeConfig, parseNodeConfig } from './config.js'

/** Settings given on the command line; each overrides the environment and the config file. */
export interface ConfigFlags {
  name?: string
  cluster?: string
  listen?: string
  join?: string[]
  secretFile?: string
  workersDir?: string
  mdns?: boolean
  logLevel?: string
  advertise?: string
  interface?: string
  tls?: boolean
}

/** Options of `loadNodeConfig`. */
export interface LoadConfigOptions {
  /** Config file (`--config`); relative to `cwd`. Default: `WMESH_CONFIG`, then `wmesh.config.json` in `cwd` if present. */
  configFile?: string
  /** Command-line settings, the highest precedence. */
  flags?: ConfigFlags
  /** Environment to read `WMESH_*` from (default `process.env`). */
  env?: NodeJS.ProcessEnv
  /** Directory that relative paths from the environment and flags resolve against (default `process.cwd()`). */
  cwd?: string
}

/** A validated configuration with absolute paths, and the file it came from (if any). */
export interface LoadedConfig {
  config: NodeConfig
  file: string | undefined
}

/** The config file `wmesh start` looks for in the working directory. */
export const DEFAULT_CONFIG_FILE = 'wmesh.config.json'

type Key = keyof ConfigFlags

/** Environment variables and the key each sets; WMESH_JOIN, WMESH_MDNS and WMESH_TLS are converted. */
const envKeys = {
  WMESH_NAME: 'name',
  WMESH_CLUSTER: 'cluster',
  WMESH_LISTEN: 'listen',
  WMESH_JOIN: 'join',
  WMESH_SECRET_FILE: 'secretFile',
  WMESH_WORKERS: 'workersDir',
  WMESH_LOG_LEVEL: 'logLevel',
  WMESH_MDNS: 'mdns',
  WMESH_ADVERTISE: 'advertise',
  WMESH_INTERFACE: 'interface',
  WMESH_TLS: 'tls',
} as const satisfies Record<string, Key>

/** Flag spelling of each key, for error messages. */
const flagNames: Record<Key, string> = {
  name: '--name',
  cluster: '--cluster',
  listen: '--listen',
  join: '--join',
  secretFile: '--secret-file',
  workersDir: '--workers',
  mdns: '--[no-]mdns',
  logLevel: '--log-level',
  advertise: '--advertise',
  interface: '--interface',
  tls: '--tls',
}

/**
 * Loads the node configuration: the config file, overridden by `WMESH_*` environment
 * variables, overridden by command-line flags. Validates it, makes every path absolute
 * (paths from the file resolve against the file's directory, others against `cwd`) and
 * checks that the files and directories it names exist.
 *
 * @throws ConfigError with a one-line message naming the source (file, variable or flag) and the key.
 */
export async function loadNodeConfig(options: LoadConfigOptions = {}): Promise<LoadedConfig> {
  const env = options.env ?? process.env
  const cwd = resolve(options.cwd ?? process.cwd())
  const file = await findConfigFile(options.configFile, env, cwd)
  const fileInput = file === undefined ? {} : await readConfigFile(file)
  // Validate the file on its own first, so its mistakes are reported against it even
  // when a flag or variable overrides the offending key.
  parseNodeConfig(fileInput, file ?? 'configuration')

  const sources = new Map<Key, string>()
  const overrides: Partial<Record<Key, unknown>> = {}
  for (const [variable, key] of Object.entries(envKeys)) {
    const value = env[variable]
    if (value === undefined || value === '') continue
    overrides[key] = fromEnv(variable, key, value)
    sources.set(key, variable)
  }
  for (const [key, value] of Object.entries(options.flags ?? {}) as Array<[Key, unknown]>) {
    if (value === undefined) continue
    overrides[key] = value
    sources.set(key, flagNames[key] ?? `--${key}`)
  }

  // The file alone was valid, so a problem here is in an override: name its variable or flag.
  const result = checkNodeConfig({ ...fileInput, ...overrides })
  if (!result.success) {
    const source = (result.key !== undefined && sources.get(result.key as Key)) || file || 'configuration'
    throw new ConfigError(result.describe(source))
  }
  const config = result.output

  const fileDir = file === undefined ? cwd : dirname(file)
  const baseOf = (key: Key) => (sources.has(key) ? cwd : fileDir)
  const sourceOf = (key: Key) => sources.get(key) ?? file ?? 'configuration'
  if (config.workersDir !== undefined) {
    config.workersDir = resolve(baseOf('workersDir'), config.workersDir)
    await checkPath(sourceOf('workersDir'), 'workersDir', config.workersDir, 'directory')
  }
  if (config.secretFile !== undefined) {
    config.secretFile = resolve(baseOf('secretFile'), config.secretFile)
    await checkPath(sourceOf('secretFile'), 'secretFile', config.secretFile, 'readable file')
  }
  for (const [name, worker] of Object.entries(config.workers)) {
    if (worker.file === undefined) continue
    worker.file = resolve(fileDir, worker.file)
    await checkPath(file ?? 'configuration', `workers.${name}.file`, worker.file, 'file')
  }
  return { config, file }
}

async function findConfigFile(explicit: string | undefined, env: NodeJS.ProcessEnv, cwd: string) {
  const named = explicit ?? (env.WMESH_CONFIG || undefined)
  if (named !== undefined) {
    const file = resolve(cwd, named)
    if (!(await isFile(file))) throw new ConfigError(`config file not found: ${file}`)
    return file
  }
  const fallback = resolve(cwd, DEFAULT_CONFIG_FILE)
  return (await isFile(fallback)) ? fallback : undefined
}

/** Reads a .json, .js/.mjs/.cjs or .ts/.mts/.cts config file into a plain object. */
async function readConfigFile(file: string): Promise<Record<string, unknown>> {
  const ext = extname(file).toLowerCase()
  let value: unknown
  if (ext === '.json') {
    const text = await readFile(file, 'utf8')
    try {
      value = JSON.parse(text)
    } catch (error) {
      throw new ConfigError(`${file}: not valid JSON: ${oneLine(error)}`)
    }
  } else if (['.js', '.mjs', '.cjs', '.ts', '.mts', '.cts'].includes(ext)) {
    value = await importConfigModule(file, ext)
  } else {
    throw new ConfigError(`${file}: unsupported config file type "${ext}"; use .json, .js, .mjs or .ts`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(`${file}: expected the configuration to be an object`)
  }
  return value as Record<string, unknown>
}

async function importConfigModule(file: string, ext: string): Promise<unknown> {
  const url = pathToFileURL(file).href
  let module: { default?: unknown }
  try {
    if (ext.endsWith('ts')) {
      const { tsImport } = await import('tsx/esm/api')
      module = await tsImport(url, import.meta.url)
    } else {
      module = await import(url)
    }
  } catch (error) {
    throw new ConfigError(`${file}: could not load: ${oneLine(error)}`, { cause: error })
  }
  let value = module.default
  // A .ts file compiled as CommonJS (no "type": "module") arrives wrapped in a second default.
  if (isObject(value) && '__esModule' in value && 'default' in value) value = value.default
  if (value === undefined) {
    throw new ConfigError(`${file}: no default export; export the configuration (or a function returning it)`)
  }
  if (typeof value === 'function') {
    try {
      value = await value()
    } catch (error) {
      throw new ConfigError(`${file}: the exported function threw: ${oneLine(error)}`, { cause: error })
    }
  }
  return value
}

/** Converts an environment value to what the schema expects for `key`. */
function fromEnv(variable: string, key: Key, value: string): unknown {
  if (key === 'join') {
    return value
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '')
  }
  if (key === 'mdns' || key === 'tls') {
    const v = value.trim().toLowerCase()
    if (['0', 'false', 'no', 'off'].includes(v)) return false
    if (['1', 'true', 'yes', 'on'].includes(v)) return true
    throw new ConfigError(`${variable}: key "${key}": expected 0, 1, true or false, got "${value}"`)
  }
  return value
}

type Expect = 'file' | 'readable file' | 'directory'

/** Throws a ConfigError naming `source` and `key` unless `path` is what `expect` says. */
async function checkPath(source: string, key: string, path: string, expect: Expect): Promise<void> {
  const problem = `${source}: key "${key}"`
  const stats = await stat(path).catch(() => undefined)
  if (stats === undefined) {
    throw new ConfigError(`${problem}: ${expect === 'directory' ? 'directory' : 'file'} not found: ${path}`)
  }
  if (expect === 'directory') {
    if (!stats.isDirectory()) throw new ConfigError(`${problem}: not a directory: ${path}`)
    return
  }
  if (!stats.isFile()) throw new ConfigError(`${problem}: not a file: ${path}`)
  if (expect === 'readable file') {
    await access(path, constants.R_OK).catch(() => {
      throw new ConfigError(`${problem}: file not readable: ${path}`)
    })
  }
}

async function isFile(path: string): Promise<boolean> {
  const stats = await stat(path).catch(() => undefined)
  return stats?.isFile() ?? false
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null
}

/** The first line of an error's message, so every ConfigError stays one line. */
function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error)
  return message.split('\n')[0]?.trim() ?? ''
}
