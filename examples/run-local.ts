/**
 * Runs the seed's two workers in this one process: ServerWorker listens on 127.0.0.1:11009
 * (or $PORT) and FooWorker connects to it and logs each "Hello World". Ctrl-C stops both.
 */
import { startWorker } from '@wmesh/core'
import FooWorker from './workers/foo-worker.js'
import ServerWorker from './workers/server-worker.js'

const port = Number(process.env.PORT ?? 11009)
const server = await startWorker(ServerWorker, { host: '127.0.0.1', port })
const foo = await startWorker(FooWorker, { host: '127.0.0.1', port: server.worker.port })

let stopping = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(130)
    stopping = true
    Promise.all([foo.stop(), server.stop()]).then(() => process.exit(0))
  })
}
