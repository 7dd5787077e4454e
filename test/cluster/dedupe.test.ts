import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { Link } from '../../packages/mesh/dist/link.js'
import { freePorts, killAll, type NodeProcess, startNodeProcess, tempCluster } from '../support/node-process.js'

let nodes: NodeProcess[] = []
afterEach(async () => {
  await killAll(nodes)
  nodes = []
})

describe('simultaneous dial (fake peer "a" < "n1")', () => {
  it('n1 keeps the link dialed by the smaller id and closes the other', async () => {
    const { dir, secretFile } = tempCluster()
    const secret = Buffer.from(readFileSync(secretFile, 'utf8').trim(), 'utf8')
    const [pn, pp] = await freePorts(2)
    const id = 'a:0000000001-abcdef'
    const init = { cluster: 'wmesh', secret, localId: id, localKind: 'node' as const }
    const logger = pino({ level: 'silent' })
    const accepted: Link[] = []
    const server = createServer((s) =>
      Link.establish(s, { ...init, role: 'acceptor' }, { logger }).then(
        (l) => accepted.push(l),
        () => {},
      ),
    )
    server.listen(pp, '127.0.0.1')
    await once(server, 'listening')
    const n1 = startNodeProcess(dir, {
      name: 'n1',
      listen: `127.0.0.1:${pn}`,
      join: [`127.0.0.1:${pp}`],
      mdns: false,
      secretFile,
    })
    nodes.push(n1)
    await n1.waitFor((l) => String(l.msg).startsWith('node n1 running'))
    const deadline = Date.now() + 5000
    while (accepted.length === 0 && Date.now() < deadline) await delay(50) // n1 dialed us: link X
    const socket = connect({ host: '127.0.0.1', port: pn as number })
    await once(socket, 'connect')
    const dialed = await Link.establish(socket, { ...init, role: 'dialer' }, { logger }) // link Y
    // A node's first message on a link is its entry (or `relink`): n1 decides on it.
    dialed.send({ t: 'want' })
    const closed = (l: Link) =>
      new Promise<boolean>((r) => {
        if (l.closed) r(true)
        l.once('close', () => r(true))
        setTimeout(() => r(false), 2000)
      })
    const [xClosed, yClosed] = await Promise.all([closed(accepted[0] as Link), closed(dialed)])
    server.close()
    for (const l of [...accepted, dialed]) l.destroy()
    // "a:..." < "n1:...": keep Y (dialed by a), close X (dialed by n1)
    expect({ xClosed, yClosed }).toEqual({ xClosed: true, yClosed: false })
  })
})
