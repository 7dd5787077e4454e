import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  parseEnvFile,
  parseUnitEnvironment,
  readDeploy,
  repoRoot,
  shellWords,
  systemdMs,
  UnitFile,
} from './fixtures/deploy/deploy-files.js'
import { eventually, type LabProcess, mapPaths, type RunSpec, runIn, spawnIn } from './fixtures/deploy/lab-run.js'
import { createLab, type Lab, requireRoot } from './lab/netns.js'
import { wmeshBin } from './support/node-process.js'

const run = promisify(execFile)
const unitText = readDeploy('systemd/wmesh.service')
const unit = new UnitFile(unitText)

describe('systemd/wmesh.service', () => {
  it('passes `systemd-analyze verify` without a warning', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wmesh-unit-'))
    try {
      // verify checks that ExecStart's program exists: map it only where Node.js lives elsewhere.
      const text = existsSync('/usr/bin/node') ? unitText : unitText.replace('/usr/bin/node', process.execPath)
      writeFileSync(join(dir, 'wmesh.service'), text)
      const { stdout, stderr } = await run('systemd-analyze', ['verify', join(dir, 'wmesh.service')]).catch(
        (error: { stdout: string; stderr: string; message: string }) => {
          throw new Error(`systemd-analyze verify failed: ${error.stderr || error.message}`)
        },
      )
      expect(`${stdout}${stderr}`.trim()).toBe('')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

/**
 * What systemd would run for the unit, with its paths mapped to `root`: ExecStart with the
 * `%d` specifier (credentials directory), Environment= and EnvironmentFile=, WorkingDirectory=.
 */
function unitRunSpec(root: string): RunSpec {
  const mapping = [
    ['/opt/wmesh', repoRoot.replace(/\/$/, '')],
    ['/etc/wmesh', join(root, 'etc')],
    ['/var/lib/wmesh', join(root, 'state')],
  ] as const
  const execStart = unit.get('Service', 'ExecStart') as string
  const specifiers = [...execStart.matchAll(/%(.)/g)].map((m) => m[1])
  expect(
    specifiers.every((s) => s === 'd' || s === '%'),
    'only %d is emulated',
  ).toBe(true)
  const argv = shellWords(execStart.replace(/%d/g, join(root, 'credentials')).replace(/%%/g, '%')).map((word) =>
    mapPaths(word, mapping),
  )
  if (argv[0] === '/usr/bin/node') argv[0] = process.execPath
  let env = parseUnitEnvironment(unit.all('Service', 'Environment'))
  for (const file of unit.all('Service', 'EnvironmentFile')) {
    const path = mapPaths(file.replace(/^-/, ''), mapping)
    if (existsSync(path)) env = { ...env, ...parseEnvFile(readFileSync(path, 'utf8')) }
    else expect(file.startsWith('-'), `${file} is optional`).toBe(true)
  }
  return { argv, env, cwd: mapPaths(unit.get('Service', 'WorkingDirectory') as string, mapping) }
}

// The unit's ExecStart, as systemd would run it (user, sandbox and credential copy aside),
// on two hosts of the lab that share the LAN: the shipped config has mDNS on, so they find
// each other with no seeds. Then the CLI lists them and calls across, and SIGTERM stops each.
describe('systemd/wmesh.service ExecStart on two namespaced hosts', () => {
  let lab: Lab
  const nodes: LabProcess[] = []
  const root = mkdtempSync(join(tmpdir(), 'wmesh-systemd-'))
  const secret = `${randomBytes(32).toString('hex')}\n`

  beforeAll(async () => {
    requireRoot()
    lab = await createLab({ hosts: 2 })
    for (const host of lab.hosts) {
      const dir = join(root, host.name)
      // The layout of deploy/README.md's install steps, under `dir`.
      mkdirSync(join(dir, 'etc/workers'), { recursive: true })
      mkdirSync(join(dir, 'state'))
      mkdirSync(join(dir, 'credentials'))
      copyFileSync(join(repoRoot, 'deploy/systemd/wmesh.config.json'), join(dir, 'etc/wmesh.config.json'))
      copyFileSync(join(repoRoot, 'test/fixtures/deploy/hello-worker.mjs'), join(dir, 'etc/workers/hello-worker.mjs'))
      writeFileSync(join(dir, 'etc/wmesh.env'), `${readDeploy('systemd/wmesh.env')}WMESH_NAME=${host.name}\n`)
      // systemd's copy of LoadCredential=secret:/etc/wmesh/secret is read-only for the service.
      writeFileSync(join(dir, 'credentials/secret'), secret)
      chmodSync(join(dir, 'credentials/secret'), 0o400)
      nodes.push(spawnIn(host, unitRunSpec(dir)))
    }
    await Promise.all(
      nodes.map((node, i) => node.waitFor((l) => l.msg === `node h${i + 1} running`, 'the node running')),
    )
  }, 60_000)

  afterAll(async () => {
    await lab?.destroy()
    rmSync(root, { recursive: true, force: true })
  })

  const cli = (args: string[]) => {
    const h1 = lab.hosts[0]
    if (!h1) throw new Error('no h1')
    const secretFile = join(root, 'h1/credentials/secret')
    return runIn(h1, {
      argv: [process.execPath, wmeshBin, ...args, '--join', `${h1.ip}:7946`, '--secret-file', secretFile],
      env: {},
      cwd: root,
    })
  }

  it('the nodes find each other by mDNS and answer the CLI', async () => {
    const listed = await eventually(async () => {
      const { code, stdout, stderr } = await cli(['nodes', '--json'])
      if (code !== 0) throw new Error(stderr)
      const rows = JSON.parse(stdout) as Array<{ name: string; status: string }>
      return rows.length === 2 && rows.every((r) => r.status === 'up') ? rows : undefined
    }, 'two nodes up')
    expect(listed.map((r) => r.name)).toEqual(['h1', 'h2'])
    const answer = await cli(['call', 'hello_worker', 'hello', '"systemd"', '--node', 'h2'])
    expect(answer.stderr).toBe('')
    expect(JSON.parse(answer.stdout)).toBe('hello, systemd, from h2')
  }, 30_000)

  it('SIGTERM stops each node gracefully with exit 0, within TimeoutStopSec', async () => {
    const limit = systemdMs(unit.get('Service', 'TimeoutStopSec') as string)
    for (const [i, node] of nodes.entries()) {
      const started = Date.now()
      expect(unit.get('Service', 'KillSignal')).toBe('SIGTERM')
      node.child.kill('SIGTERM')
      expect(await node.exited).toBe(0)
      expect(Date.now() - started).toBeLessThan(limit)
      expect(node.lines.some((l) => l.msg === `node h${i + 1} stopped`)).toBe(true)
    }
  }, 60_000)
})
