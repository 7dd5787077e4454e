import { setTimeout as delay } from 'node:timers/promises'
import { afterEach, describe, expect, it } from 'vitest'
import { freePorts, killAll, type NodeProcess, startNodeProcess, tempCluster } from '../support/node-process.js'

let nodes: NodeProcess[] = []
afterEach(async () => {
  await killAll(nodes)
  nodes = []
})

describe('redialing lost peers', () => {
  it('forgets a lost peer once it is back (under a new incarnation and port)', async () => {
    const { dir, secretFile } = tempCluster()
    const [p1] = await freePorts(1)
    const cfg = { mdns: false, secretFile, logLevel: 'debug' }
    const n1 = startNodeProcess(dir, { ...cfg, name: 'n1', listen: `127.0.0.1:${p1}` })
    nodes.push(n1)
    await n1.waitFor((l) => String(l.msg).startsWith('node n1 running'))
    const first = startNodeProcess(dir, { ...cfg, name: 'n2', listen: '127.0.0.1:0', join: [`127.0.0.1:${p1}`] })
    nodes.push(first)
    const linked = await n1.waitFor((l) => String(l.msg).startsWith('linked with n2'))
    await delay(300)
    first.child.kill('SIGKILL')
    await n1.waitFor((l) => /node n2:.* is down/.test(String(l.msg)))
    const second = startNodeProcess(dir, { ...cfg, name: 'n2', listen: '127.0.0.1:0', join: [`127.0.0.1:${p1}`] })
    nodes.push(second)
    await n1.waitFor((l) => String(l.msg).startsWith('linked with n2') && l !== linked)
    const backAt = n1.lines.length
    await delay(8000)
    const stale = n1.lines.slice(backAt).filter((l) => String(l.msg).startsWith('cannot link to 127.0.0.1:'))
    expect(stale.map((l) => l.msg)).toEqual([])
  }, 30_000)
})
