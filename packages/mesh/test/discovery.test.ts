// Seeds only, on loopback: mDNS must never run in the root network namespace (it runs in
// test/lab/netns.test.ts, inside namespaces).
import { spawn } from 'node:child_process'
import { lookup } from 'node:dns/promises'
import { once } from 'node:events'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { InvalidArgumentError } from '@wmesh/core'
import { pino } from 'pino'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { type Candidate, Discovery, type DiscoveryInit, mdnsLabel, parseSeed } from '../src/discovery.js'

// The CommonJS module object: what bonjour-service (multicast-dns) calls, and what a spy can replace.
const dgram = createRequire(import.meta.url)('node:dgram') as typeof import('node:dgram')

const silent = pino({ level: 'silent' })

const probe = fileURLToPath(new URL('../../../test/fixtures/discovery-probe.mjs', import.meta.url))
const running: Discovery[] = []

function discovery(init: Partial<DiscoveryInit>, lookupFn?: (host: string) => Promise<string[]>): Discovery {
  const d = new Discovery(
    {
      cluster: 'test',
      nodeId: 'n1:abc',
      nodeName: 'n1',
      port: 7946,
      protocolVersion: 1,
      mdns: false,
      seeds: [],
      ...init,
    },
    { logger: silent, ...(lookupFn ? { lookup: lookupFn } : {}) },
  )
  running.push(d)
  return d
}

/** Resolves with the candidates seen once `count` have arrived. */
function collect(d: Discovery, count: number): Promise<Candidate[]> {
  const seen: Candidate[] = []
  return new Promise((resolve) => {
    d.on('candidate', (candidate) => {
      seen.push(candidate)
      if (seen.length === count) resolve(seen)
    })
  })
}

afterEach(async () => {
  vi.restoreAllMocks()
  await Promise.all(running.splice(0).map((d) => d.stop()))
})

describe('parseSeed', () => {
  it('accepts host names, IPv4 and bracketed IPv6', () => {
    expect(parseSeed('localhost:7946')).toEqual({ text: 'localhost:7946', host: 'localhost', port: 7946 })
    expect(parseSeed('wmesh.default.svc.cluster.local:1')).toMatchObject({
      host: 'wmesh.default.svc.cluster.local',
      port: 1,
    })
    expect(parseSeed('127.0.0.1:65535')).toMatchObject({ host: '127.0.0.1', port: 65535 })
    expect(parseSeed('[::1]:7946')).toMatchObject({ host: '::1', port: 7946 })
  })

  it.each([
    ['localhost', /missing ":PORT"/],
    ['localhost:', /port "" is not in 1-65535/],
    ['localhost:0', /not in 1-65535/],
    ['localhost:65536', /not in 1-65535/],
    ['localhost:79x', /not in 1-65535/],
    [':7946', /neither an IPv4 address nor a host name/],
    ['bad host:7946', /neither an IPv4 address nor a host name/],
    ['::1:7946', /IPv6 addresses need brackets/],
    ['[::1]7946', /missing "\]:PORT"/],
    ['[10.0.0.1]:7946', /not an IPv6 address/],
  ])('rejects %s with a message saying what is wrong', (seed, message) => {
    expect(() => parseSeed(seed)).toThrow(InvalidArgumentError)
    expect(() => parseSeed(seed)).toThrow(message)
  })
})

describe('mdnsLabel', () => {
  it('is a single DNS label, unique per cluster and node id', () => {
    const a = mdnsLabel('lab', 'web.1:0lq3x9k2a7-4f1c9e', 'web.1')
    expect(a).toMatch(/^web-1-[0-9a-f]{16}$/)
    expect(mdnsLabel('lab', 'web.1:0lq3x9k2a7-000000', 'web.1')).not.toBe(a)
    expect(mdnsLabel('other', 'web.1:0lq3x9k2a7-4f1c9e', 'web.1')).not.toBe(a)
    expect(mdnsLabel('lab', 'x', 'n'.repeat(300)).length).toBeLessThanOrEqual(63)
  })
})

describe('Discovery with seeds', () => {
  it('rejects a bad seed, port or interface at construction', () => {
    expect(() => discovery({ seeds: ['ok:1', 'nope'] })).toThrow(/invalid seed "nope"/)
    expect(() => discovery({ port: 0 })).toThrow(InvalidArgumentError)
    expect(() => discovery({ interface: 'eth0' })).toThrow(/must be the IPv4 address/)
  })

  it('proposes every address a seed name resolves to', async () => {
    const port = 7946
    const expected = (await lookup('localhost', { all: true })).map((a) => a.address)
    const d = discovery({ seeds: [`localhost:${port}`] })
    const seen = collect(d, expected.length)
    await d.start()
    const candidates = await seen
    expect(candidates.map((c) => c.host).sort()).toEqual([...expected].sort())
    for (const c of candidates) expect(c).toEqual({ host: c.host, port, source: 'seed' })
  })

  it('proposes each address of a multi-address name (a headless service) and IP literals', async () => {
    const d = discovery({ seeds: ['wmesh-headless:7000', '[::1]:7001'] }, async () => ['127.0.0.2', '127.0.0.3'])
    const seen = collect(d, 3)
    await d.start()
    expect((await seen).map((c) => `${c.host}:${c.port}`).sort()).toEqual([
      '127.0.0.2:7000',
      '127.0.0.3:7000',
      '::1:7001',
    ])
  })

  it('re-resolves and re-proposes seeds every seedInterval, picking up new addresses', async () => {
    let answers = ['127.0.0.2']
    const d = discovery({ seeds: ['svc:7000'], seedInterval: 40 }, async () => answers)
    const seen = collect(d, 4)
    await d.start()
    answers = ['127.0.0.2', '127.0.0.3']
    const hosts = (await seen).map((c) => c.host)
    expect(hosts[0]).toBe('127.0.0.2')
    expect(hosts.filter((h) => h === '127.0.0.2').length).toBeGreaterThanOrEqual(2)
    expect(hosts).toContain('127.0.0.3')
  })

  it('reports a seed that does not resolve once per failure streak, and keeps retrying it', async () => {
    let fail = true
    let lookups = 0
    const d = discovery({ seeds: ['gone:7000'], seedInterval: 20 }, async () => {
      lookups++
      if (fail) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' })
      return ['127.0.0.2']
    })
    const errors: Error[] = []
    d.on('error', (error) => errors.push(error))
    const recovered = collect(d, 1)
    await d.start()
    await vi.waitFor(() => expect(lookups).toBeGreaterThanOrEqual(4))
    expect(errors).toHaveLength(1)
    expect(errors[0]?.message).toMatch(/cannot resolve seed gone:7000: ENOTFOUND/)
    expect((errors[0] as { code?: string }).code).toBe('ERR_SEED_RESOLVE')
    fail = false
    expect(await recovered).toEqual([{ host: '127.0.0.2', port: 7000, source: 'seed' }])
  })

  it('stops proposing after stop(); start() and stop() are idempotent', async () => {
    const d = discovery({ seeds: ['127.0.0.1:7000'], seedInterval: 10 })
    let count = 0
    d.on('candidate', () => count++)
    await Promise.all([d.start(), d.start()])
    await vi.waitFor(() => expect(count).toBeGreaterThanOrEqual(2))
    await Promise.all([d.stop(), d.stop()])
    const after = count
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(count).toBe(after)
  })

  it('with mdns: false opens no UDP socket', async () => {
    const createSocket = vi.spyOn(dgram, 'createSocket').mockImplementation(() => {
      throw new Error('this test must not open a UDP socket')
    })
    const d = discovery({ mdns: false, seeds: ['127.0.0.1:7000'] })
    const seen = collect(d, 1)
    await d.start()
    await seen
    expect(createSocket).not.toHaveBeenCalled()
    expect(process.getActiveResourcesInfo()).not.toContain('UDPWRAP')
  })

  it('leaves nothing running after stop(): a process using it exits by itself', async () => {
    // The probe runs the built Discovery with a seed every 50 ms and stops when stdin closes.
    const child = spawn(
      process.execPath,
      [probe, '--no-mdns', '--seed', 'localhost:7000', '--seed-interval', '50', '--name', 'exit-test'],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    )
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString()
    })
    await vi.waitFor(() => expect(out.match(/"event":"candidate"/g)?.length ?? 0).toBeGreaterThanOrEqual(3), {
      timeout: 5000,
    })
    const closed = Date.now()
    child.stdin.end()
    const killer = setTimeout(() => child.kill('SIGKILL'), 3000)
    const [code] = (await once(child, 'exit')) as [number | null]
    clearTimeout(killer)
    expect(code).toBe(0)
    expect(out).toContain('"event":"stopped"')
    expect(Date.now() - closed).toBeLessThan(2000)
  })
})
