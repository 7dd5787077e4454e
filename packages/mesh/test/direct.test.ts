import * as net from 'node:net'
import { AbortError, NodeDownError, NoSuchMethodError, RemoteError, TimeoutError, WorkerDownError } from '@wmesh/core'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { DirectCaller, type DirectEndpoint } from '../src/direct-caller.js'
import { DIRECT, directIdentity } from '../src/direct-protocol.js'
import { type DirectInit, DirectServer } from '../src/direct-server.js'
import { LogCapture, silent } from './helpers.js'

const init: DirectInit = {
  nodeId: 'b:1',
  cluster: 'test',
  secret: Buffer.from('direct test secret'),
  tls: false,
  host: '127.0.0.1',
  heartbeatInterval: 100,
  heartbeatTimeout: 400,
}
const until = { timeout: 10_000, interval: 5 }
const IDENTITY = directIdentity('b:1', 'echo#0')
const owned: Array<{ close(): void }> = []
afterEach(() => {
  for (const thing of owned.splice(0)) thing.close()
})

interface Served {
  server: DirectServer
  endpoint: DirectEndpoint
  calls: string[]
  release: () => void
}

/** A callee with methods echo, fail (throws), wait (answers when released), casted. */
async function serve(): Promise<Served> {
  const calls: string[] = []
  let release = (): void => {}
  const methods: Record<string, (arg: unknown) => unknown> = {
    echo: (arg) => arg,
    fail: () => {
      throw new TypeError('it failed')
    },
    failLater: async () => {
      throw new RangeError('it failed later')
    },
    wait: () =>
      new Promise((resolve) => {
        release = () => resolve('released')
      }),
    casted: (arg) => {
      calls.push(String(arg))
    },
  }
  const server = await DirectServer.listen(init, IDENTITY, {
    logger: silent,
    hasMethod: (m) => m in methods,
    invoke: (m, arg) => (methods[m] as (arg: unknown) => unknown)(arg),
    castFailed: () => {},
  })
  owned.push({ close: () => void server.drain(0) })
  return {
    server,
    endpoint: { node: 'b', host: '127.0.0.1', port: server.port, id: IDENTITY, label: 'echo#0' },
    calls,
    release: () => release(),
  }
}

function caller(extra: Partial<DirectInit> = {}, logger = silent): DirectCaller {
  const c = new DirectCaller({ ...init, ...extra, localId: `caller-${Math.random()}` }, { logger })
  owned.push(c)
  return c
}

/** The peer once its link is up (the first ask starts dialing and answers "through the node"). */
async function linked(c: DirectCaller, endpoint: DirectEndpoint) {
  expect(c.peer(endpoint)).toBeUndefined()
  let peer: ReturnType<DirectCaller['peer']>
  await vi.waitFor(() => {
    peer = c.peer(endpoint)
    expect(peer).toBeDefined()
  }, until)
  return peer as NonNullable<typeof peer>
}

describe('direct calls between worker threads', () => {
  it('answers calls and casts with the values sent, nil as undefined', async () => {
    const { endpoint, calls } = await serve()
    const c = caller()
    const peer = await linked(c, endpoint)
    const values = [1, 'two', { three: [3] }, [true, null]]
    const results = await Promise.all(values.map((v) => c.call(peer, 'echo', v, 1000, undefined)))
    expect(results).toEqual(values)
    const bytes = await c.call(peer, 'echo', new Uint8Array([4, 5]), 1000, undefined)
    expect(Buffer.from(bytes as Uint8Array)).toEqual(Buffer.from([4, 5]))
    expect(await c.call(peer, 'echo', undefined, 1000, undefined)).toBeUndefined()
    await c.cast(peer, 'casted', 'x')
    await vi.waitFor(() => expect(calls).toEqual(['x']), until)
  })

  it('rebuilds what the method threw as RemoteError, and a missing method as NoSuchMethodError', async () => {
    const { endpoint } = await serve()
    const c = caller()
    const peer = await linked(c, endpoint)
    const thrown = await c.call(peer, 'fail', null, 1000, undefined).catch((e: unknown) => e)
    expect(thrown).toBeInstanceOf(RemoteError)
    expect((thrown as RemoteError).remoteName).toBe('TypeError')
    const rejected = await c.call(peer, 'failLater', null, 1000, undefined).catch((e: unknown) => e)
    expect((rejected as RemoteError).remoteName).toBe('RangeError')
    await expect(c.call(peer, 'nope', null, 1000, undefined)).rejects.toBeInstanceOf(NoSuchMethodError)
  })

  it('times out a call that gets no answer, and ignores the late answer', async () => {
    const { endpoint, release } = await serve()
    const c = caller()
    const peer = await linked(c, endpoint)
    await expect(c.call(peer, 'wait', null, 50, undefined)).rejects.toBeInstanceOf(TimeoutError)
    release()
    expect(await c.call(peer, 'echo', 'after', 1000, undefined)).toBe('after')
    expect(peer.pending.size).toBe(0)
  })

  it('fails calls in flight with WorkerDownError when the callee goes away', async () => {
    const { endpoint, server } = await serve()
    const c = caller()
    const peer = await linked(c, endpoint)
    const inFlight = c.call(peer, 'wait', null, 5000, undefined)
    // The thread ending closes its sockets without goodbye: do the same.
    await server.drain(0)
    await expect(inFlight).rejects.toBeInstanceOf(WorkerDownError)
  })

  it('fails calls in flight with NodeDownError at once when the view says their node left', async () => {
    const { endpoint } = await serve()
    const c = caller()
    const peer = await linked(c, endpoint)
    const inFlight = c.call(peer, 'wait', null, 5000, undefined).catch((e: unknown) => e)
    await vi.waitFor(() => expect(peer.pending.size).toBe(1), until)
    const started = performance.now()
    c.retain(new Set(), new Set(['some-other-node']))
    expect(await inFlight).toBeInstanceOf(NodeDownError)
    expect(performance.now() - started).toBeLessThan(500)
  })

  it('keeps a link no longer listed for its last answers, and fails them if its node then leaves', async () => {
    const { endpoint } = await serve()
    const c = caller()
    const peer = await linked(c, endpoint)
    const inFlight = c.call(peer, 'wait', null, 5000, undefined).catch((e: unknown) => e)
    await vi.waitFor(() => expect(peer.pending.size).toBe(1), until)
    c.retain(new Set(), new Set(['b']))
    expect(peer.state).toBe('away')
    expect(peer.pending.size).toBe(1)
    c.retain(new Set(), new Set())
    expect(await inFlight).toBeInstanceOf(NodeDownError)
  })

  it('a link kept for its last answers that then closes: its calls still follow the view, and close()', async () => {
    for (const ending of ['node leaves', 'caller closes'] as const) {
      const { endpoint, server } = await serve()
      const c = caller()
      const peer = await linked(c, endpoint)
      const inFlight = c.call(peer, 'wait', null, 10_000, undefined).catch((e: unknown) => e)
      await vi.waitFor(() => expect(peer.pending.size).toBe(1), until)
      c.retain(new Set(), new Set(['b']))
      expect(peer.state).toBe('away')
      await server.drain(0)
      await vi.waitFor(() => expect(peer.link).toBeUndefined(), until)
      expect(peer.verdict).toBeDefined()
      if (ending === 'node leaves') c.retain(new Set(), new Set())
      else c.close()
      // Settled now, not by the one-second verdict timer (which close() must not leave behind).
      expect(peer.verdict).toBeUndefined()
      expect(await inFlight).toBeInstanceOf(ending === 'node leaves' ? NodeDownError : WorkerDownError)
    }
  })

  it('rejects an aborted call with AbortError, as the path through the node does', async () => {
    const { endpoint } = await serve()
    const c = caller()
    const peer = await linked(c, endpoint)
    const controller = new AbortController()
    const inFlight = c.call(peer, 'wait', null, 5000, controller.signal)
    controller.abort()
    await expect(inFlight).rejects.toBeInstanceOf(AbortError)
    expect(peer.pending.size).toBe(0)
  })

  it('drains: new calls are told to go through the nodes while calls in flight finish', async () => {
    const { endpoint, server, release } = await serve()
    const c = caller()
    const peer = await linked(c, endpoint)
    const inFlight = c.call(peer, 'wait', null, 5000, undefined)
    await vi.waitFor(() => expect(peer.pending.size).toBe(1), until)
    const drained = server.drain(5000)
    await vi.waitFor(() => expect(c.peer(endpoint)).toBeUndefined(), until)
    release()
    expect(await inFlight).toBe('released')
    await drained
  })

  it('refuses a caller with the wrong secret, logging why, and never routes to it', async () => {
    const { endpoint } = await serve()
    const logs = new LogCapture()
    const { pino } = await import('pino')
    const c = caller({ secret: Buffer.from('not the right secret') }, pino({ level: 'info' }, logs))
    expect(c.peer(endpoint)).toBeUndefined()
    await vi.waitFor(() => expect(logs.lines.some((l) => /no direct link/.test(String(l.msg)))).toBe(true), until)
    expect(c.peer(endpoint)).toBeUndefined()
  })

  it('never calls a port that now belongs to another worker (a stale view): its calls go through the nodes', async () => {
    const { endpoint, server } = await serve()
    const logs = new LogCapture()
    const { pino } = await import('pino')
    const c = caller({}, pino({ level: 'info' }, logs))
    // The view still lists echo#1 at this port, but echo#0 listens there now.
    const stale = { ...endpoint, id: directIdentity('b:1', 'echo#1'), label: 'echo#1' }
    expect(c.peer(stale)).toBeUndefined()
    await vi.waitFor(
      () =>
        expect(
          logs.lines.some((l) => /echo#1 on b \(its port now belongs to another worker\)/.test(String(l.msg))),
        ).toBe(true),
      until,
    )
    expect(c.peer(stale)).toBeUndefined()
    // The caller holds no link to it, while the right endpoint still links.
    expect((await linked(c, endpoint)).endpoint.id).toBe(endpoint.id)
    expect(server.port).toBe(stale.port)
  })

  it('closes a link that sends a malformed message, and keeps serving others', async () => {
    const { endpoint } = await serve()
    const bad = caller()
    const badPeer = await linked(bad, endpoint)
    const good = caller()
    const goodPeer = await linked(good, endpoint)
    ;(badPeer.link as { send(m: unknown): boolean }).send([DIRECT.OK, 1, 'a reply is not a request'])
    await vi.waitFor(() => expect(badPeer.link).toBeUndefined(), until)
    expect(await good.call(goodPeer, 'echo', 'still here', 1000, undefined)).toBe('still here')
  })

  it('refuses a connection that is not a wmesh link at the handshake', async () => {
    const { endpoint } = await serve()
    const socket = net.connect(endpoint.port, '127.0.0.1')
    socket.on('error', () => {})
    socket.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]))
    await new Promise((resolve) => socket.once('close', resolve))
    expect(socket.destroyed).toBe(true)
  })
})
