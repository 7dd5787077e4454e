import { startWorker } from '@wmesh/core'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import FooWorker from '../examples/workers/foo-worker.js'
import ServerWorker from '../examples/workers/server-worker.js'

describe('the seed examples (ServerWorker/TimeServer and FooWorker/TimeClient)', () => {
  it("delivers the time server's Hello World to FooWorker.getExternalData more than once", async () => {
    const logger = pino({ level: 'silent' })
    await using server = await startWorker(ServerWorker, { host: '127.0.0.1', port: 0, intervalMs: 20 }, { logger })
    await using foo = await startWorker(FooWorker, { host: '127.0.0.1', port: server.worker.port }, { logger })
    const greetings = () => foo.worker.messages.join('').split('Hello World\n').length - 1
    // The first greeting comes from the accept callback, the rest from the periodic timer.
    await new Promise<void>((resolve) => {
      const original = foo.worker.getExternalData.bind(foo.worker)
      foo.worker.getExternalData = (data: string) => {
        original(data)
        if (greetings() >= 3) resolve()
      }
      if (greetings() >= 3) resolve()
    })
    expect(greetings()).toBeGreaterThanOrEqual(3)
    expect(foo.worker.messages.join('')).toMatch(/^(Hello World\n)+$/)
  })
})
