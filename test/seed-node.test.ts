import { createServer } from 'node:net'
import { Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { createNodeLogger, MeshNode } from '@wmesh/mesh'
import { describe, expect, it } from 'vitest'

const workers = fileURLToPath(new URL('../examples/workers/', import.meta.url))

/** A port that was free a moment ago (the example server binds a fixed port). */
async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

describe('the seed examples in a node', () => {
  it('runs ServerWorker and FooWorker in their own threads, and FooWorker hears Hello World repeatedly', async () => {
    const port = await freePort()
    const sink = new Writable({ write: (_chunk, _encoding, done) => done() })
    const node = new MeshNode(
      {
        name: 'seed',
        workers: {
          server_worker: { file: `${workers}server-worker.ts`, args: { host: '127.0.0.1', port, intervalMs: 30 } },
          foo_worker: { file: `${workers}foo-worker.ts`, args: { host: '127.0.0.1', port } },
        },
      },
      { logger: createNodeLogger({ level: 'warn', pretty: false, destination: sink }) },
    )
    await using _ = node
    await node.start()
    let heard = 0
    for (let i = 0; i < 200 && heard < 3; i++) {
      heard = (await node.worker('foo_worker').call('greetings')) as number
      if (heard < 3) await new Promise((resolve) => setTimeout(resolve, 30))
    }
    expect(heard).toBeGreaterThanOrEqual(3)
  })
})
