import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { Handler, startWorker, Worker } from '@wmesh/core'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)
const peer = fileURLToPath(new URL('./fixtures/msgpack-peer.py', import.meta.url))
// Debian's python3 carries python3-msgpack (installed by scripts/install-test-deps.sh).
const python = '/usr/bin/python3'

describe('MessagePack interoperability', () => {
  it('reads a frame written by Python msgpack and answers in a frame Python msgpack reads', async () => {
    const received: unknown[] = []
    class Answer extends Handler {
      override receiveData(data: unknown) {
        received.push(data)
        this.sendData({ echo: data, from: 'wmesh', n: 300, neg: -70000, float: 1.25, bin: Buffer.from([9, 8]) })
      }
    }
    class Plain extends Worker {}
    await using handle = await startWorker(Plain, undefined, { logger: pino({ level: 'silent' }) })
    const server = await handle.worker.startServer('127.0.0.1', 0, Answer)
    const { stdout } = await run(python, [peer, '127.0.0.1', String(server.port)], { timeout: 10_000 })
    const sent = {
      text: 'héllo from python',
      n: -7,
      big: 2 ** 40,
      f: 0.5,
      ok: true,
      none: null,
      list: [1, 2, 3],
    }
    expect(received).toHaveLength(1)
    expect(received[0]).toMatchObject(sent)
    // Python sent 2**40 as a uint64: it arrives as a plain number because it is a safe integer.
    expect(Buffer.from((received[0] as { bin: Uint8Array }).bin)).toEqual(Buffer.from([0, 1, 255]))
    const reply = JSON.parse(stdout)
    expect(reply).toEqual({
      echo: { ...sent, bin: { bytes: [0, 1, 255] } },
      from: 'wmesh',
      n: 300,
      neg: -70000,
      float: 1.25,
      bin: { bytes: [9, 8] },
    })
  })
})
