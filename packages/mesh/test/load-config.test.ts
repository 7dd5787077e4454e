import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ConfigError, parseNodeConfig } from '../src/config.js'
import { type LoadConfigOptions, loadNodeConfig } from '../src/load-config.js'

let dir: string

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wmesh-config-'))
})

afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

/** Writes `content` (JSON-encoded unless a string) to `name` under the test's directory. */
async function put(name: string, content: unknown): Promise<string> {
  const path = join(dir, name)
  await mkdir(join(path, '..'), { recursive: true })
  await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content))
  return path
}

/** Loads with an empty environment and the test's directory as cwd unless overridden. */
function load(options: LoadConfigOptions = {}) {
  return loadNodeConfig({ env: {}, cwd: dir, ...options })
}

/** The ConfigError message `promise` rejects with; fails the test if it resolves. */
async function configError(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(ConfigError)
  const message = (error as ConfigError).message
  expect(message).not.toContain('\n')
  return message
}

describe('loadNodeConfig', () => {
  it('uses the defaults when there is no config file', async () => {
    const { config, file } = await load()
    expect(file).toBeUndefined()
    expect(config).toMatchObject({ cluster: 'wmesh', listen: '0.0.0.0:7946', mdns: true, join: [], workers: {} })
    expect(config.name).toBeUndefined()
  })

  it('finds wmesh.config.json in cwd', async () => {
    const path = await put('wmesh.config.json', { cluster: 'from-default-file' })
    const { config, file } = await load()
    expect(file).toBe(path)
    expect(config.cluster).toBe('from-default-file')
  })

  it('prefers --config over WMESH_CONFIG over wmesh.config.json', async () => {
    await put('wmesh.config.json', { cluster: 'default' })
    const fromEnv = await put('env.json', { cluster: 'env' })
    const explicit = await put('explicit.json', { cluster: 'explicit' })
    expect((await load({ env: { WMESH_CONFIG: fromEnv } })).config.cluster).toBe('env')
    expect((await load({ env: { WMESH_CONFIG: fromEnv }, configFile: 'explicit.json' })).file).toBe(explicit)
  })

  it('lets the environment override the file and flags override both', async () => {
    await put('wmesh.config.json', {
      name: 'file-name',
      cluster: 'file-cluster',
      listen: '127.0.0.1:1000',
      join: ['a:1'],
      mdns: true,
      logLevel: 'warn',
    })
    const env = {
      WMESH_CLUSTER: 'env-cluster',
      WMESH_LISTEN: '127.0.0.1:2000',
      WMESH_JOIN: 'b:2, [::1]:3,',
      WMESH_MDNS: 'false',
      WMESH_LOG_LEVEL: 'debug',
    }
    const { config } = await load({ env, flags: { listen: '[::]:3000', logLevel: 'trace' } })
    expect(config).toMatchObject({
      name: 'file-name',
      cluster: 'env-cluster',
      listen: '[::]:3000',
      join: ['b:2', '[::1]:3'],
      mdns: false,
      logLevel: 'trace',
    })
    const flagged = await load({ env, flags: { join: ['c:4'], mdns: true, name: 'flag-name' } })
    expect(flagged.config).toMatchObject({ join: ['c:4'], mdns: true, name: 'flag-name' })
  })

  it('takes advertise, interface and tls from the environment and from flags', async () => {
    const env = { WMESH_ADVERTISE: '10.0.0.5', WMESH_INTERFACE: '10.0.0.5', WMESH_TLS: 'yes' }
    expect((await load({ env })).config).toMatchObject({ advertise: '10.0.0.5', interface: '10.0.0.5', tls: true })
    const { config } = await load({ env, flags: { advertise: 'node-1.example', tls: false } })
    expect(config).toMatchObject({ advertise: 'node-1.example', interface: '10.0.0.5', tls: false })
    expect(await configError(load({ env: { WMESH_TLS: 'sometimes' } }))).toMatch(/^WMESH_TLS: key "tls": /)
  })

  it('resolves paths from the file against its directory and the others against cwd', async () => {
    await put('conf/workers/w.mjs', 'export default class {}')
    await put('conf/w2.mjs', 'export default class {}')
    await put('conf/secret', 'x\n')
    await put('cwd-workers/w.mjs', 'export default class {}')
    await put('cwd-secret', 'y\n')
    await put('conf/wmesh.config.json', {
      workersDir: 'workers',
      secretFile: 'secret',
      workers: { w2: { file: './w2.mjs' } },
    })
    const fromFile = await load({ configFile: 'conf/wmesh.config.json' })
    expect(fromFile.config.workersDir).toBe(join(dir, 'conf/workers'))
    expect(fromFile.config.secretFile).toBe(join(dir, 'conf/secret'))
    expect(fromFile.config.workers.w2?.file).toBe(join(dir, 'conf/w2.mjs'))

    const overridden = await load({
      configFile: 'conf/wmesh.config.json',
      env: { WMESH_WORKERS: 'cwd-workers' },
      flags: { secretFile: 'cwd-secret' },
    })
    expect(overridden.config.workersDir).toBe(join(dir, 'cwd-workers'))
    expect(overridden.config.secretFile).toBe(join(dir, 'cwd-secret'))
    expect(overridden.config.workers.w2?.file).toBe(join(dir, 'conf/w2.mjs'))
  })

  it('loads an .mjs config whose default export is an async function', async () => {
    await put('wmesh.config.mjs', "export default async () => ({ cluster: 'from-mjs', join: ['h:1'] })")
    const { config } = await load({ configFile: 'wmesh.config.mjs' })
    expect(config.cluster).toBe('from-mjs')
    expect(config.join).toEqual(['h:1'])
  })

  it('loads a .ts config with type annotations', async () => {
    const source = [
      'const port: number = 4000',
      "const listen: string = '127.0.0.1:' + port",
      'export default { listen }',
    ]
    await put('wmesh.config.ts', source.join('\n'))
    const { config } = await load({ configFile: 'wmesh.config.ts' })
    expect(config.listen).toBe('127.0.0.1:4000')
  })

  describe('errors are one line naming the source and the key', () => {
    it('an unknown key', async () => {
      const path = await put('wmesh.config.json', { cluster: 'c', lisen: '1.2.3.4:5' })
      expect(await configError(load())).toBe(`${path}: unknown key "lisen"`)
    })

    it('an unknown key inside a worker entry', async () => {
      const path = await put('wmesh.config.json', { workers: { w: { instance: 2 } } })
      expect(await configError(load())).toBe(`${path}: unknown key "workers.w.instance"`)
    })

    it('every unknown key of an object, not only the first', async () => {
      const path = await put('wmesh.config.json', { lisen: '1.2.3.4:5', jion: [] })
      expect(await configError(load())).toBe(`${path}: unknown key "lisen", "jion"`)
    })

    it('a list where a map belongs, and a missing required key', async () => {
      const path = await put('wmesh.config.json', { workers: [] })
      expect(await configError(load())).toBe(`${path}: key "workers": expected record`)
      await put('wmesh.config.json', { schedules: [{ worker: 'w', every: 5 }] })
      expect(await configError(load())).toBe(`${path}: key "schedules.0.method": expected string`)
      await put('wmesh.config.json', { workers: { w: { restart: [] } } })
      expect(await configError(load())).toBe(`${path}: key "workers.w.restart": expected object`)
    })

    it('a Map, a Date or a class instance where a map of keys belongs (from a .js config)', () => {
      const problem = (input: unknown) => {
        try {
          parseNodeConfig(input, 'c.mjs')
          return 'accepted'
        } catch (error) {
          return (error as ConfigError).message
        }
      }
      expect(problem({ workers: new Map([['echo', { file: 'x.mjs' }]]) })).toBe('c.mjs: key "workers": expected record')
      expect(problem({ workers: { echo: { restart: new Date() } } })).toBe(
        'c.mjs: key "workers.echo.restart": expected object',
      )
      expect(problem(new (class Config {})())).toBe('c.mjs: expected object')
      expect(problem({ workers: Object.assign(Object.create(null), { echo: {} }) })).toBe('accepted')
    })

    it('a worker name that a plain object cannot hold', async () => {
      const path = await put('wmesh.config.json', '{ "workers": { "__proto__": { "instances": 1 } } }')
      expect(await configError(load())).toBe(`${path}: key "workers.__proto__": __proto__ cannot be a worker name`)
      await put('wmesh.config.json', { workers: { constructor: {} } })
      expect(await configError(load())).toBe(`${path}: key "workers.constructor": constructor cannot be a worker name`)
    })

    it('a port out of range', async () => {
      const path = await put('wmesh.config.json', { listen: '127.0.0.1:99999' })
      expect(await configError(load())).toBe(`${path}: key "listen": expected a port from 0 to 65535`)
      await put('wmesh.config.json', { join: ['10.0.0.1:7946', 'h:65536'] })
      expect(await configError(load())).toBe(`${path}: key "join.1": expected a port from 0 to 65535`)
    })

    it('a value of the wrong type', async () => {
      const path = await put('wmesh.config.json', { mdns: 'yes' })
      expect(await configError(load())).toBe(`${path}: key "mdns": expected boolean`)
    })

    it('a bad value from the environment names the variable', async () => {
      await put('wmesh.config.json', { cluster: 'c' })
      expect(await configError(load({ env: { WMESH_LISTEN: 'nowhere' } }))).toMatch(/^WMESH_LISTEN: key "listen": /)
      expect(await configError(load({ env: { WMESH_MDNS: 'maybe' } }))).toMatch(/^WMESH_MDNS: key "mdns": /)
    })

    it('a bad flag names the flag', async () => {
      expect(await configError(load({ flags: { logLevel: 'loud' } }))).toMatch(/^--log-level: key "logLevel": /)
    })

    it('a bad file value is reported even when a flag overrides it', async () => {
      const path = await put('wmesh.config.json', { listen: 7946 })
      expect(await configError(load({ flags: { listen: '127.0.0.1:1' } }))).toBe(
        `${path}: key "listen": expected string`,
      )
    })

    it('a missing worker file', async () => {
      const path = await put('wmesh.config.json', { workers: { w: { file: 'nope.mjs' } } })
      expect(await configError(load())).toBe(`${path}: key "workers.w.file": file not found: ${join(dir, 'nope.mjs')}`)
    })

    it('a missing workersDir, from the file and from a flag', async () => {
      const path = await put('wmesh.config.json', { workersDir: 'gone' })
      expect(await configError(load())).toBe(`${path}: key "workersDir": directory not found: ${join(dir, 'gone')}`)
      expect(await configError(load({ flags: { workersDir: 'wmesh.config.json' } }))).toBe(
        `--workers: key "workersDir": not a directory: ${path}`,
      )
    })

    it('a missing secretFile', async () => {
      const path = await put('wmesh.config.json', { secretFile: 'wmesh.secret' })
      expect(await configError(load())).toBe(`${path}: key "secretFile": file not found: ${join(dir, 'wmesh.secret')}`)
    })

    it('a JSON file that does not parse', async () => {
      const path = await put('wmesh.config.json', '{ "cluster": "c", }')
      expect(await configError(load())).toMatch(new RegExp(`^${path}: not valid JSON: .+`))
    })

    it('a module config that throws on import', async () => {
      const path = await put('wmesh.config.mjs', "throw new Error('boom\\nsecond line')")
      expect(await configError(load({ configFile: path }))).toBe(`${path}: could not load: boom`)
    })

    it('a config file named explicitly that does not exist', async () => {
      expect(await configError(load({ configFile: 'missing.json' }))).toBe(
        `config file not found: ${join(dir, 'missing.json')}`,
      )
      expect(await configError(load({ env: { WMESH_CONFIG: '/nonexistent/wmesh.json' } }))).toBe(
        'config file not found: /nonexistent/wmesh.json',
      )
    })
  })
})
