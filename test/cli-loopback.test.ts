import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { cells, ok, oneErrorLine, startWmesh, tableLines, type WmeshResult, wmesh } from './fixtures/cli/run-wmesh.js'
import { type LoopbackCluster, loopbackCluster } from './support/cluster.js'
import { exampleWorkers, freePorts, meshFixtures } from './support/node-process.js'

// The built `wmesh` binary against three real nodes on loopback, joined by seeds. One
// cluster serves the whole file; the stop tests come last because they end it.
const echo = { file: `${meshFixtures}echo-worker.mjs` }
const timeServer = {
  file: `${exampleWorkers}server-worker.ts`,
  args: { host: '127.0.0.1', port: 0, intervalMs: 1000 },
}

let cluster: LoopbackCluster
let joinArgs: string[]

/** `wmesh args...` joined through n1, with the cluster's secret. */
const run = (...args: string[]) => wmesh([...args, ...joinArgs])

/** Re-runs `wmesh args...` until `accept` holds (the registry converges within a second or two). */
async function until(args: string[], accept: (r: WmeshResult) => boolean, timeout = 8000): Promise<WmeshResult> {
  const deadline = Date.now() + timeout
  for (;;) {
    const result = await run(...args)
    if (accept(result)) return result
    if (Date.now() > deadline) throw new Error(`wmesh ${args.join(' ')} never satisfied the test: ${result.stdout}`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

const json = <T>(result: WmeshResult): T => JSON.parse(result.stdout) as T

beforeAll(async () => {
  cluster = await loopbackCluster([{ echo, server_worker: timeServer }, { echo }, { echo: { ...echo, instances: 2 } }])
  joinArgs = ['--join', cluster.seeds[0] as string, '--secret-file', cluster.secretFile]
  // Every node, worker and service in the view of n1.
  await until(
    ['workers', '--json'],
    (r) => r.code === 0 && json<Array<{ state: string }>>(r).filter((w) => w.state === 'running').length === 5,
  )
}, 30_000)

afterAll(async () => {
  await cluster?.stop()
})

describe('wmesh listings against a loopback cluster (--join)', () => {
  it('nodes: a table of every node within 80 columns, and --json with stable fields', async () => {
    const [text, asJson] = await Promise.all([run('nodes'), run('nodes', '--json')])
    const [header, ...rows] = tableLines(ok(text).stdout)
    expect(cells(header as string)).toEqual(['NODE', 'ID', 'ADDRESS', 'STATUS', 'UPTIME', 'WORKERS', 'RTT', 'VERSION'])
    expect(rows.map((r) => cells(r)[0])).toEqual(['n1', 'n2', 'n3'])
    const n3 = cells(rows[2] as string)
    expect(n3[2]).toBe(cluster.seeds[2])
    expect(n3[3]).toBe('up')
    expect(n3[4]).toMatch(/^\d+s$/)
    expect(n3[5]).toBe('2/2')
    expect(n3[6]).toMatch(/^[\d.]+ms$/)

    const nodes = json<Array<Record<string, unknown>>>(ok(asJson))
    expect(nodes.map((n) => n.name)).toEqual(['n1', 'n2', 'n3'])
    for (const n of nodes) {
      expect(Object.keys(n).sort()).toEqual(
        [
          'addresses',
          'id',
          'incarnation',
          'linked',
          'name',
          'port',
          'running',
          'rttMs',
          'startedAt',
          'status',
          'uptimeMs',
          'version',
          'workers',
        ].sort(),
      )
      expect(n.id).toBe(`${n.name}:${n.incarnation}`)
      expect(typeof n.rttMs).toBe('number')
      // The short id in the table is the tail of the incarnation.
      expect(String(n.incarnation).endsWith(cells(rows[nodes.indexOf(n)] as string)[1] as string)).toBe(true)
    }
    expect(nodes.map((n) => n.linked)).toEqual([true, false, false])
  })

  it('workers: one line per worker, key and node with its instances; --json lists every instance', async () => {
    const [text, asJson, filtered] = await Promise.all([
      run('workers'),
      run('workers', '--json'),
      run('workers', 'echo', '--node', 'n3', '--json'),
    ])
    const [header, ...rows] = tableLines(ok(text).stdout)
    expect(cells(header as string)).toEqual(['WORKER', 'KEY', 'NODE', 'INSTANCES', 'STATE', 'RESTARTS'])
    expect(rows.map((r) => cells(r))).toEqual([
      ['echo', '-', 'n1', '1/1', 'running', '0'],
      ['echo', '-', 'n2', '1/1', 'running', '0'],
      ['echo', '-', 'n3', '2/2', 'running', '0'],
      ['server_worker', '-', 'n1', '1/1', 'running', '0'],
    ])
    const workers = json<Array<Record<string, unknown>>>(ok(asJson))
    expect(workers).toHaveLength(5)
    expect(workers[0]).toEqual({
      name: 'echo',
      key: null,
      instance: 0,
      node: 'n1',
      state: 'running',
      restarts: 0,
      lastExit: null,
      startedAt: expect.any(Number),
      methods: expect.arrayContaining(['echo', 'fail', 'sleep', 'remember']),
    })
    expect(json<Array<{ node: string; instance: number }>>(ok(filtered)).map((w) => [w.node, w.instance])).toEqual([
      ['n3', 0],
      ['n3', 1],
    ])
  })

  it('services: the published time server with an address other hosts can reach', async () => {
    const [text, asJson] = await Promise.all([run('services'), run('services', '--json')])
    const services = json<Array<Record<string, unknown>>>(ok(asJson))
    expect(services).toEqual([
      {
        name: 'time',
        node: 'n1',
        host: '127.0.0.1',
        port: expect.any(Number),
        codec: 'raw',
        worker: 'server_worker',
        key: null,
      },
    ])
    const [header, row] = tableLines(ok(text).stdout)
    expect(cells(header as string)).toEqual(['SERVICE', 'NODE', 'ADDRESS', 'CODEC', 'WORKER'])
    expect(cells(row as string)).toEqual(['time', 'n1', `127.0.0.1:${services[0]?.port}`, 'raw', 'server_worker'])
  })
})

describe('wmesh call, cast and keyed workers', () => {
  it('call prints the result as JSON, runs on a chosen node, or on every node with --node all', async () => {
    const [plain, onN2, all, allJson] = await Promise.all([
      run('call', 'echo', 'echo', '{"a":[1,"two",null]}'),
      run('call', 'echo', 'whoami', '--node', 'n2'),
      run('call', 'echo', 'echo', '7', '--node', 'all'),
      run('call', 'echo', 'echo', '"hi"', '--node', 'all', '--json'),
    ])
    expect(JSON.parse(ok(plain).stdout)).toEqual({ a: [1, 'two', null] })
    expect(JSON.parse(ok(onN2).stdout)).toEqual({ threadId: expect.any(Number), args: null })
    expect(tableLines(ok(all).stdout).map((l) => cells(l))).toEqual([
      ['NODE', 'RESULT'],
      ['n1', '7'],
      ['n2', '7'],
      ['n3', '7'],
    ])
    expect(json(ok(allJson))).toEqual(['n1', 'n2', 'n3'].map((node) => ({ node, ok: true, value: 'hi' })))
    // The argument can come from stdin.
    const fromStdin = await wmesh(['call', 'echo', 'echo', '-', ...joinArgs], { input: '{"from":"stdin"}\n' })
    expect(JSON.parse(ok(fromStdin).stdout)).toEqual({ from: 'stdin' })
  })

  it('exits 4 for an unknown worker or method, 5 for a remote exception, 6 on timeout: one line each', async () => {
    const [noWorker, noMethod, remote, timeout, allFail] = await Promise.all([
      run('call', 'nope', 'echo'),
      run('call', 'echo', 'nope'),
      run('call', 'echo', 'fail', '"boom"'),
      run('call', 'echo', 'sleep', '3000', '--timeout', '300'),
      run('call', 'echo', 'fail', '"all"', '--node', 'all', '--json'),
    ])
    expect(noWorker.code).toBe(4)
    expect(oneErrorLine(noWorker)).toBe('wmesh: no running instance of nope in the cluster')
    expect(noMethod.code).toBe(4)
    expect(oneErrorLine(noMethod)).toContain('nope')
    expect(remote.code).toBe(5)
    // The worker's CustomError has code E_CUSTOM; the node currently forwards it as ERR_REMOTE.
    expect(oneErrorLine(remote)).toMatch(/^wmesh: echo\.fail threw .*\[(E_CUSTOM|ERR_REMOTE)\]: boom$/)
    expect(remote.stdout).toBe('')
    expect(timeout.code).toBe(6)
    expect(oneErrorLine(timeout)).toMatch(/timed out after 300 ms/)
    expect(timeout.ms).toBeLessThan(2500)
    expect(allFail.code).toBe(5)
    const outcomes = json<Array<{ node: string; ok: boolean; error: { code: string; message: string } }>>(allFail)
    expect(outcomes.map((o) => [o.node, o.ok, o.error.code])).toEqual([
      ['n1', false, 'ERR_REMOTE'],
      ['n2', false, 'ERR_REMOTE'],
      ['n3', false, 'ERR_REMOTE'],
    ])
    expect(outcomes[0]?.error.message).toMatch(/^echo\.fail threw .*: all$/)
  })

  it('cast hands a call over without waiting; ask-result reads what the worker stored', async () => {
    const cast = await run('cast', 'echo', 'remember', '{"key":"greeting","value":{"text":"hello"}}', '--node', 'n2')
    expect(ok(cast).stdout.trim()).toBe('sent echo.remember to n2')
    const stored = await until(['ask-result', 'echo', 'greeting', '--node', 'n2'], (r) => r.code === 0)
    expect(JSON.parse(stored.stdout)).toEqual({ text: 'hello' })
    const [missing, badMethod, castJson] = await Promise.all([
      run('ask-result', 'echo', 'nothing-here', '--node', 'n2'),
      run('cast', 'echo', 'no_such_method'),
      run('cast', 'echo', 'echo', '1', '--json'),
    ])
    expect(missing.code).toBe(4)
    expect(oneErrorLine(missing)).toBe('wmesh: echo has no result stored under "nothing-here"')
    // A cast gets no answer, so the CLI checks the registry for the method first.
    expect(badMethod.code).toBe(4)
    expect(oneErrorLine(badMethod)).toBe('wmesh: echo has no public method "no_such_method"')
    expect(json(ok(castJson))).toEqual({ sent: true, worker: 'echo', method: 'echo' })
  })

  it('new-worker starts a keyed instance that call --key reaches; delete-worker stops it', async () => {
    const created = await run('new-worker', 'echo', '--key', 'job-1', '--data', '{"size":3}', '--node', 'n2')
    expect(ok(created).stdout.trim()).toBe('started echo key job-1 on n2 (running)')
    const called = await run('call', 'echo', 'whoami', '--key', 'job-1')
    expect(JSON.parse(ok(called).stdout)).toMatchObject({ args: { size: 3 } })
    const listed = await until(['workers', 'echo', '--json'], (r) => r.stdout.includes('job-1'))
    expect(json<Array<{ key: string | null; node: string }>>(listed).find((w) => w.key === 'job-1')?.node).toBe('n2')

    const deleted = await run('delete-worker', 'echo', '--key', 'job-1')
    expect(ok(deleted).stdout.trim()).toBe('deleted echo key job-1')
    const again = await run('delete-worker', 'echo', '--key', 'job-1')
    expect(again.code).toBe(4)
    oneErrorLine(again)
    const gone = await run('call', 'echo', 'whoami', '--key', 'job-1')
    expect(gone.code).toBe(4)

    const asJson = await run('new-worker', 'echo', '--key', 'job-2', '--json')
    expect(json(ok(asJson))).toMatchObject({ name: 'echo', key: 'job-2', node: 'n1', state: 'running' })
    expect(json(ok(await run('delete-worker', 'echo', '--key', 'job-2', '--json')))).toEqual({
      deleted: true,
      worker: 'echo',
      key: 'job-2',
    })
    const missingKey = await run('new-worker', 'echo')
    expect(missingKey.code).toBe(2)
    expect(oneErrorLine(missingKey)).toContain("required option '--key <key>' not specified")
  })

  it('ping: min, median and max round trips per node, as a table and as --json', async () => {
    const [text, one] = await Promise.all([run('ping', '-n', '3'), run('ping', 'n3', '-n', '4', '--json')])
    const [header, ...rows] = tableLines(ok(text).stdout)
    expect(cells(header as string)).toEqual(['NODE', 'SENT', 'LOST', 'MIN', 'MEDIAN', 'MAX'])
    expect(rows.map((r) => cells(r).slice(0, 3))).toEqual([
      ['n1', '3', '0'],
      ['n2', '3', '0'],
      ['n3', '3', '0'],
    ])
    const [row] = json<Array<Record<string, number | number[] | string>>>(ok(one))
    expect(row).toMatchObject({ node: 'n3', sent: 4, received: 4 })
    const samples = row?.samplesMs as number[]
    expect(samples).toHaveLength(4)
    expect(row?.minMs).toBe(Math.min(...samples))
    expect(row?.maxMs).toBe(Math.max(...samples))
  })
})

describe('how wmesh finds and joins the cluster', () => {
  it('reads WMESH_JOIN and WMESH_SECRET_FILE, or the config and secret `wmesh init` wrote', async () => {
    const viaEnv = await wmesh(['nodes', '--json'], {
      env: { WMESH_JOIN: cluster.seeds.slice(1).join(','), WMESH_SECRET_FILE: cluster.secretFile },
    })
    expect(json<Array<{ name: string; linked: boolean }>>(ok(viaEnv)).find((n) => n.linked)?.name).toBe('n2')
    // A directory like the one `wmesh init` makes: wmesh.config.json naming the secret and seeds.
    writeFileSync(
      join(cluster.dir, 'wmesh.config.json'),
      JSON.stringify({ secretFile: cluster.secretFile, join: [cluster.seeds[2]], mdns: false }),
    )
    const viaConfig = await wmesh(['workers', 'echo', '--node', 'n3', '--json'], { cwd: cluster.dir })
    expect(json<unknown[]>(ok(viaConfig))).toHaveLength(2)
  })

  it('exits 8 for a wrong secret, 9 for another cluster, 7 when no node answers, 3 without a secret', async () => {
    const wrongSecret = join(cluster.dir, 'wrong-secret')
    writeFileSync(wrongSecret, `${'ab'.repeat(32)}\n`, { mode: 0o600 })
    const [closed] = await freePorts(1)
    const [auth, otherCluster, nobody, noSecret, notJson] = await Promise.all([
      wmesh(['nodes', '--join', cluster.seeds[0] as string, '--secret-file', wrongSecret]),
      run('nodes', '--cluster', 'elsewhere', '--connect-timeout', '1500'),
      wmesh([
        'nodes',
        '--join',
        `127.0.0.1:${closed}`,
        '--secret-file',
        cluster.secretFile,
        '--connect-timeout',
        '800',
      ]),
      wmesh(['nodes', '--join', cluster.seeds[0] as string], { cwd: '/' }),
      run('call', 'echo', 'echo', 'hello'),
    ])
    expect(auth.code).toBe(8)
    expect(oneErrorLine(auth)).toMatch(/cluster secret/)
    expect(otherCluster.code).toBe(9)
    expect(oneErrorLine(otherCluster)).toMatch(/"elsewhere"/)
    expect(nobody.code).toBe(7)
    expect(oneErrorLine(nobody)).toMatch(new RegExp(`check that a node listens at 127\\.0\\.0\\.1:${closed}$`))
    expect(noSecret.code).toBe(3)
    expect(oneErrorLine(noSecret)).toMatch(/^wmesh: no cluster secret: give --secret-file FILE/)
    // A secret file no node would accept names the file, as a config problem.
    const emptySecret = join(cluster.dir, 'empty-secret')
    writeFileSync(emptySecret, '\n', { mode: 0o600 })
    const empty = await wmesh(['nodes', '--join', cluster.seeds[0] as string, '--secret-file', emptySecret])
    expect(empty.code).toBe(3)
    expect(oneErrorLine(empty)).toBe(`wmesh: secretFile ${emptySecret}: the secret must be at least 16 characters`)
    expect(notJson.code).toBe(2)
    expect(oneErrorLine(notJson)).toBe(
      `wmesh: the argument "hello" is not valid JSON; a string needs JSON quotes: '"hello"'`,
    )
    // --verbose adds the detail, still no stack for the one-line default.
    const verbose = await wmesh([
      '--verbose',
      'nodes',
      '--join',
      cluster.seeds[0] as string,
      '--secret-file',
      wrongSecret,
    ])
    expect(verbose.code).toBe(8)
    expect(verbose.stderr).toMatch(/AuthenticationError/)
  })
})

describe('wmesh watch --json', () => {
  it('prints one JSON object per event line until SIGINT, then exits 0', async () => {
    const watch = startWmesh(['watch', '--json', ...joinArgs])
    try {
      // The banner goes to stderr, so stdout stays pure NDJSON.
      const deadline = Date.now() + 10_000
      while (!watch.stderr().includes('Ctrl-C to stop') && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 25))
      }
      expect(watch.stderr()).toMatch(
        /^watching "wmesh" through n1 \(3 nodes, \d+ workers, 1 service\); Ctrl-C to stop\n$/,
      )
      ok(await run('new-worker', 'echo', '--key', 'watched', '--node', 'n2'))
      const up = await watch.waitForLine((l) => l.includes('"worker:up"') && l.includes('"watched"'), 'worker:up')
      expect(JSON.parse(up)).toEqual({
        at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
        event: 'worker:up',
        worker: 'echo',
        key: 'watched',
        instance: null,
        node: 'n2',
        state: 'running',
      })
      ok(await run('delete-worker', 'echo', '--key', 'watched'))
      const down = await watch.waitForLine((l) => l.includes('"worker:down"') && l.includes('"watched"'), 'worker:down')
      expect(JSON.parse(down)).toMatchObject({ event: 'worker:down', worker: 'echo', key: 'watched', node: 'n2' })
      for (const line of watch.lines) expect(() => JSON.parse(line)).not.toThrow()
    } finally {
      watch.child.kill('SIGINT')
    }
    const result = await watch.closed
    expect(result.code).toBe(0)
  })
})

describe('wmesh stop', () => {
  it('stops a node gracefully (it exits 0) and waits until it has left the cluster', async () => {
    const n3 = cluster.nodes[2]
    const stopped = await run('stop', '--node', 'n3')
    expect(ok(stopped).stdout).toMatch(/^stopped n3 \(n3:[\w-]+\) in \d+ ms\n$/)
    expect(await n3?.exited).toBe(0)
    const nodes = await run('nodes', '--json')
    expect(json<Array<{ name: string }>>(ok(nodes)).map((n) => n.name)).toEqual(['n1', 'n2'])
    const usage = await run('stop')
    expect(usage.code).toBe(2)
    expect(oneErrorLine(usage)).toBe('wmesh: name the node to stop with --node NODE, or stop every node with --all')
  })

  it('--all stops every node, the one it links through last', async () => {
    const stopped = await run('stop', '--all', '--json')
    expect(json<Array<{ node: string }>>(ok(stopped)).map((s) => s.node)).toEqual(['n2', 'n1'])
    expect(await Promise.all(cluster.nodes.map((n) => n.exited))).toEqual([0, 0, 0])
  })
})

describe('wmesh stop, a node that does not answer', () => {
  let frozen: LoopbackCluster | undefined
  afterAll(async () => {
    frozen?.nodes[1]?.child.kill('SIGCONT')
    await frozen?.stop()
  })

  it('exits 6 with one line when the node neither answers nor leaves in time', async () => {
    frozen = await loopbackCluster([{ echo }, { echo }])
    const client = await frozen.client()
    await vi.waitFor(async () => expect((await client.nodes()).length).toBe(2), { timeout: 10_000, interval: 20 })
    frozen.nodes[1]?.child.kill('SIGSTOP')
    const result = await wmesh([
      'stop',
      '--node',
      'n2',
      '--timeout',
      '1500',
      '--join',
      frozen.seeds[0] as string,
      '--secret-file',
      frozen.secretFile,
    ])
    expect(result.code).toBe(6)
    expect(oneErrorLine(result)).toMatch(/^wmesh: .*(timed out|did not leave).*1500 ms/)
  })
})
