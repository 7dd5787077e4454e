import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import {
  type ConfigSurface,
  loadConfigSurface,
  REFERENCE_FILE,
  renderConfigReference,
  repoRoot,
} from '../scripts/config-reference.js'

describe('docs/configuration.md', () => {
  let surface: ConfigSurface
  let rendered: string
  beforeAll(async () => {
    surface = await loadConfigSurface()
    rendered = await renderConfigReference(surface)
  })

  it('is what `npm run docs:config` makes of the current schema and CLI', () => {
    const committed = readFileSync(join(repoRoot, REFERENCE_FILE), 'utf8')
    // One assertion with a message that says what to do, rather than a 300-line diff first.
    expect(committed === rendered, `${REFERENCE_FILE} is stale: run \`npm run docs:config\``).toBe(true)
  })

  it('lists every key of the schema, nested ones included, with its description and default', () => {
    expect(surface.keys.length).toBeGreaterThan(20)
    for (const key of surface.keys) {
      const row = rendered
        .split('\n')
        .find((line) => line.startsWith(`| \`${key.name}\` |`) && line.includes(key.schema.description ?? ''))
      expect(row, `a row for ${key.path}`).toBeDefined()
      expect(key.schema.description, `${key.path} has a v.description()`).toBeTruthy()
      if (key.schema.default !== undefined) expect(row).toContain(`\`${JSON.stringify(key.schema.default)}\``)
    }
  })

  it('finds the variables a node reads by probing loadNodeConfig, and pairs each flag of `wmesh start` with its key', () => {
    const byName = Object.fromEntries(surface.variables.map((v) => [v.name, v.configFile ? '(config file)' : v.key]))
    expect(byName).toEqual({
      WMESH_ADVERTISE: 'advertise',
      WMESH_CLUSTER: 'cluster',
      WMESH_CONFIG: '(config file)',
      WMESH_JOIN: 'join',
      WMESH_LISTEN: 'listen',
      WMESH_LOG_LEVEL: 'logLevel',
      WMESH_MDNS: 'mdns',
      WMESH_NAME: 'name',
      WMESH_SECRET_FILE: 'secretFile',
      WMESH_TLS: 'tls',
      WMESH_WORKERS: 'workersDir',
      WMESH_INTERFACE: 'interface',
    })
    expect(surface.variables.find((v) => v.name === 'WMESH_JOIN')?.conversion).toBe('comma-separated list')
    const flags = Object.fromEntries(surface.startFlags.map((f) => [f.option.long, f.key ?? f.variable]))
    expect(flags).toMatchObject({
      '--config': 'WMESH_CONFIG',
      '--name': 'name',
      '--listen': 'listen',
      '--join': 'join',
      '--cluster': 'cluster',
      '--secret-file': 'secretFile',
      '--workers': 'workersDir',
      '--mdns': 'mdns',
      '--no-mdns': 'mdns',
      '--log-level': 'logLevel',
    })
    for (const variable of surface.variables) expect(rendered).toContain(`| \`${variable.name}\` |`)
    for (const flag of surface.startFlags) expect(rendered).toContain(`| \`${flag.option.flags}\` |`)
  })
})
