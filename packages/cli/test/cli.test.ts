import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

// The built binary: the suite runs after `tsc -b`.
const bin = fileURLToPath(new URL('../dist/bin.js', import.meta.url))
const cliPackage = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string
}

const children = new Set<ChildProcess>()
let dir: string

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wmesh-cli-'))
})

afterEach(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await once(child, 'close')
    }
  }
  children.clear()
  await rm(dir, { recursive: true, force: true })
})

/** Starts `wmesh args...` in `cwd` with no WMESH_* variables from the test's environment. */
function spawnWmesh(args: string[], cwd = dir) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WMESH_')))
  const child = spawn(process.execPath, [bin, ...args], { cwd, env: { ...env, NO_COLOR: '1' } })
  children.add(child)
  const output = { stdout: '', stderr: '' }
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    output.stdout += chunk
  })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    output.stderr += chunk
  })
  const closed = once(child, 'close').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
    ...output,
  }))
  return { child, output, closed }
}

/** Runs `wmesh args...` to completion. */
function wmesh(args: string[], cwd = dir) {
  return spawnWmesh(args, cwd).closed
}

/** Resolves with the first stdout line containing `text`; rejects if the process ends first. */
function waitForLine(run: ReturnType<typeof spawnWmesh>, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const line = run.output.stdout.split('\n').find((l) => l.includes(text))
      if (line === undefined) return
      run.child.stdout.off('data', check)
      resolve(line)
    }
    run.child.stdout.on('data', check)
    check()
    run.closed.then((result) =>
      reject(new Error(`wmesh exited (${result.code ?? result.signal}) before "${text}"; stderr: ${result.stderr}`)),
    )
  })
}

/** Asserts that stderr is exactly one `wmesh: ...` line and returns it. */
function oneErrorLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l !== '')
  expect(lines).toHaveLength(1)
  expect(lines[0]).toMatch(/^wmesh: /)
  return lines[0] as string
}

describe('wmesh', () => {
  it('prints the cli package version with --version', async () => {
    const result = await wmesh(['--version'])
    expect(result.code).toBe(0)
    expect(result.stdout.trim()).toBe(cliPackage.version)
  })

  it('prints help for a command with `help <command>`', async () => {
    const result = await wmesh(['help', 'start'])
    expect(result.code).toBe(0)
    expect(result.stdout).toContain('--join <host:port>')
    expect(result.stdout).toContain('--no-mdns')
  })

  it('exits 2 with one line for an unknown option', async () => {
    const result = await wmesh(['start', '--lisen', '127.0.0.1:1'])
    expect(result.code).toBe(2)
    expect(oneErrorLine(result.stderr)).toContain("unknown option '--lisen'")
  })

  it('exits 2 with one line for a wait longer than a timer can hold', async () => {
    const result = await wmesh(['call', 'echo', 'echo', '1', '--timeout', '3000000000', '--join', '127.0.0.1:1'])
    expect(result.code).toBe(2)
    expect(oneErrorLine(result.stderr)).toContain('expected at most 2147482647 ms')
  })
})

describe('wmesh init', () => {
  it('writes the config, a 0600 secret and the example worker, then names the next command', async () => {
    const result = await wmesh(['init'])
    expect(result.code, result.stderr).toBe(0)
    expect(JSON.parse(await readFile(join(dir, 'wmesh.config.json'), 'utf8'))).toEqual({
      cluster: 'wmesh',
      secretFile: 'wmesh.secret',
      workersDir: 'workers',
      logLevel: 'info',
    })
    const secretPath = join(dir, 'wmesh.secret')
    expect((await stat(secretPath)).mode & 0o777).toBe(0o600)
    expect(await readFile(secretPath, 'utf8')).toMatch(/^[0-9a-f]{64}\n$/)
    const worker = await readFile(join(dir, 'workers/hello-worker.mjs'), 'utf8')
    expect(worker).toContain("import { Worker } from '@wmesh/core'")
    expect(worker).toContain("static workerName = 'hello_worker'")
    expect(result.stdout).toContain(secretPath)
    expect(result.stdout).toMatch(/^next: wmesh start$/m)
  })

  it('refuses to overwrite, with one line and exit 1, and leaves the files alone', async () => {
    expect((await wmesh(['init'])).code).toBe(0)
    const secret = await readFile(join(dir, 'wmesh.secret'), 'utf8')
    const again = await wmesh(['init'])
    expect(again.code).toBe(1)
    expect(oneErrorLine(again.stderr)).toContain(`refusing to overwrite ${join(dir, 'wmesh.config.json')}`)
    expect(await readFile(join(dir, 'wmesh.secret'), 'utf8')).toBe(secret)
  })

  it('with --force replaces the files and tightens a loose secret to 0600', async () => {
    const secretPath = join(dir, 'wmesh.secret')
    await writeFile(secretPath, 'old\n')
    await chmod(secretPath, 0o644)
    const result = await wmesh(['init', '--force'])
    expect(result.code, result.stderr).toBe(0)
    expect((await stat(secretPath)).mode & 0o777).toBe(0o600)
    expect(await readFile(secretPath, 'utf8')).toMatch(/^[0-9a-f]{64}\n$/)
  })

  it('creates the directory it is given', async () => {
    const result = await wmesh(['init', 'nested/project'])
    expect(result.code, result.stderr).toBe(0)
    expect((await stat(join(dir, 'nested/project/workers/hello-worker.mjs'))).isFile()).toBe(true)
    expect(result.stdout).toMatch(/^next: cd nested\/project && wmesh start$/m)
  })
})

describe('wmesh start', () => {
  const badConfigs: Array<[string, unknown, RegExp]> = [
    ['an unknown key', { cluster: 'c', lisen: '127.0.0.1:1' }, /unknown key "lisen"/],
    ['a value of the wrong type', { join: '127.0.0.1:1' }, /key "join": expected array/],
    ['a missing worker file', { workers: { w: { file: 'nope.mjs' } } }, /key "workers\.w\.file": file not found: /],
  ]
  for (const [what, config, message] of badConfigs) {
    it(`exits 3 with one line naming the file and key for ${what}`, async () => {
      const file = join(dir, 'bad.json')
      await writeFile(file, JSON.stringify(config))
      const result = await wmesh(['start', '--config', file])
      expect(result.code).toBe(3)
      const line = oneErrorLine(result.stderr)
      expect(line.startsWith(`wmesh: ${file}: `)).toBe(true)
      expect(line).toMatch(message)
    })
  }

  it('exits 3 naming the flag for a bad flag value', async () => {
    const result = await wmesh(['start', '--listen', 'nowhere'])
    expect(result.code).toBe(3)
    expect(oneErrorLine(result.stderr)).toMatch(/^wmesh: --listen: key "listen": /)
  })

  it('exits 3 when the named config file does not exist', async () => {
    const result = await wmesh(['start', '--config', 'missing.json'])
    expect(result.code).toBe(3)
    expect(oneErrorLine(result.stderr)).toBe(`wmesh: config file not found: ${join(dir, 'missing.json')}`)
  })

  it('after init, runs the hello worker and exits 0 on SIGTERM', async () => {
    expect((await wmesh(['init'])).code).toBe(0)
    const node = spawnWmesh(['start', '--listen', '127.0.0.1:0', '--no-mdns'])
    const line = await waitForLine(node, 'hello worker ready')
    // Not a terminal, so logs are JSON lines.
    expect(JSON.parse(line)).toMatchObject({ msg: 'hello worker ready' })
    node.child.kill('SIGTERM')
    const result = await node.closed
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
  })
})
