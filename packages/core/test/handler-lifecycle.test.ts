import { describe, expect, it } from 'vitest'
import { AbortError, ConnectError, Handler, HandlerError, startWorker, Worker } from '../src/index.js'
import { deferred, memoryLogger } from './helpers.js'

class Plain extends Worker {}

describe('Handler hook order', () => {
  it('runs postInit, the accept/connect callback, then connectionCompleted on both sides', async () => {
    const serverEvents: string[] = []
    const clientEvents: string[] = []
    const serverDone = deferred()
    class ServerSide extends Handler {
      override postInit() {
        serverEvents.push('postInit')
      }
      override connectionCompleted() {
        serverEvents.push('connectionCompleted')
        serverDone.resolve()
      }
    }
    class ClientSide extends Handler {
      override postInit() {
        clientEvents.push('postInit')
      }
      override connectionCompleted() {
        clientEvents.push('connectionCompleted')
      }
    }
    await using handle = await startWorker(Plain, undefined, { logger: memoryLogger().logger })
    const server = await handle.worker.startServer('127.0.0.1', 0, ServerSide, () => serverEvents.push('callback'))
    const client = await handle.worker.connect('127.0.0.1', server.port, ClientSide, () =>
      clientEvents.push('callback'),
    )
    await serverDone.promise
    expect(clientEvents).toEqual(['postInit', 'callback', 'connectionCompleted'])
    expect(serverEvents).toEqual(['postInit', 'callback', 'connectionCompleted'])
    expect(client).toBeInstanceOf(ClientSide)
    expect(client.peer.port).toBe(server.port)
  })

  it('ends a refused connect in unbind(error) and rejects with ConnectError, without the callback', async () => {
    const events: string[] = []
    let reason: Error | undefined
    class Refused extends Handler {
      override postInit() {
        events.push('postInit')
      }
      override connectionCompleted() {
        events.push('connectionCompleted')
      }
      override unbind(r?: Error) {
        events.push('unbind')
        reason = r
      }
    }
    await using handle = await startWorker(Plain, undefined, { logger: memoryLogger().logger })
    // Bind then close a server to get a port that refuses.
    const probe = await handle.worker.startServer('127.0.0.1', 0, Handler)
    const port = probe.port
    await probe.close()
    await expect(
      handle.worker.connect('127.0.0.1', port, Refused, () => events.push('callback')),
    ).rejects.toBeInstanceOf(ConnectError)
    expect(events).toEqual(['postInit', 'unbind'])
    expect(reason).toBeInstanceOf(ConnectError)
    expect((reason as ConnectError).code).toBe('ERR_CONNECT')
    expect(reason?.message).toMatch(/ECONNREFUSED/)
  })

  it('aborts a connect through its signal, ending in unbind(AbortError)', async () => {
    let reason: Error | undefined
    class Aborted extends Handler {
      override unbind(r?: Error) {
        reason = r
      }
    }
    await using handle = await startWorker(Plain, undefined, { logger: memoryLogger().logger })
    const server = await handle.worker.startServer('127.0.0.1', 0, Handler)
    const controller = new AbortController()
    controller.abort(new Error('changed my mind'))
    const pending = handle.worker.connect('127.0.0.1', server.port, Aborted, undefined, { signal: controller.signal })
    await expect(pending).rejects.toBeInstanceOf(AbortError)
    expect(reason).toBeInstanceOf(AbortError)
  })

  it('calls unbind exactly once, with no reason, when the peer closes cleanly', async () => {
    const unbound = deferred<unknown[]>()
    const reasons: unknown[] = []
    class Client extends Handler {
      override unbind(r?: Error) {
        reasons.push(r)
        unbound.resolve(reasons)
      }
    }
    class Closer extends Handler {
      override connectionCompleted() {
        this.closeConnection({ afterWriting: true })
      }
    }
    await using handle = await startWorker(Plain, undefined, { logger: memoryLogger().logger })
    const server = await handle.worker.startServer('127.0.0.1', 0, Closer)
    await handle.worker.connect('127.0.0.1', server.port, Client)
    expect(await unbound.promise).toEqual([undefined])
  })

  it('closes only the connection whose hook throws, with HandlerError in unbind and one log line', async () => {
    const { logger, lines } = memoryLogger()
    const reason = deferred<Error | undefined>()
    class Faulty extends Handler {
      override receiveData(data: unknown) {
        if (data === 'boom') throw new Error('bad input handling')
        this.sendData(data)
      }
      override unbind(r?: Error) {
        reason.resolve(r)
      }
    }
    const replies: unknown[] = []
    const gotReply = deferred()
    class Echoed extends Handler {
      override receiveData(data: unknown) {
        replies.push(data)
        gotReply.resolve()
      }
    }
    await using handle = await startWorker(Plain, undefined, { logger })
    const server = await handle.worker.startServer('127.0.0.1', 0, Faulty)
    const bad = await handle.worker.connect('127.0.0.1', server.port, Handler)
    const good = await handle.worker.connect('127.0.0.1', server.port, Echoed)
    bad.sendData('boom')
    const r = await reason.promise
    expect(r).toBeInstanceOf(HandlerError)
    expect(r?.message).toMatch(/Faulty\.receiveData threw: bad input handling/)
    good.sendData('still here')
    await gotReply.promise
    expect(replies).toEqual(['still here'])
    expect(lines.filter((l) => String(l.msg).includes('bad input handling'))).toHaveLength(1)
  })
})
