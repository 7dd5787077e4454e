import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { clearNetworkFaults, limitRate, requireNft } from './faults.js'
import { createLab, type Lab, type LabHost, requireRoot, runOn } from './netns.js'

const PORT = 7300

/**
 * Counts UDP datagrams arriving at `host` until one says "end" (sent over the host's own
 * loopback, so no fault on eth0 can drop it); resolves with the count.
 */
async function countDatagrams(host: LabHost): Promise<() => Promise<number>> {
  const script = `
    const s = require('dgram').createSocket('udp4'); let n = 0
    s.on('message', (m) => { if (String(m) === 'end') { console.log(n); process.exit(0) } n++ })
    s.bind(${PORT}, '${host.ip}', () => console.log('ready'))`
  const child = host.exec(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
  const [ready] = (await once(lines, 'line')) as [string]
  expect(ready).toBe('ready')
  return async () => {
    const count = once(lines, 'line')
    await runOn(host, process.execPath, [
      '-e',
      `const s = require('dgram').createSocket('udp4'); s.send('end', ${PORT}, '${host.ip}', () => s.close())`,
    ])
    return Number(((await count) as [string])[0])
  }
}

/** Sends `total` datagrams from `from` to `to`, in bursts of 20 every 20 ms (1000 a second). */
async function sendDatagrams(from: LabHost, to: LabHost, total: number): Promise<void> {
  const script = `
    const s = require('dgram').createSocket('udp4'); let sent = 0
    const t = setInterval(() => { for (let i = 0; i < 20 && sent < ${total}; i++, sent++) s.send('x', ${PORT}, '${to.ip}')
      if (sent >= ${total}) { clearInterval(t); setTimeout(() => s.close(), 50) } }, 20)`
  const { code, out } = await runOn(from, process.execPath, ['-e', script])
  expect(code, out).toBe(0)
}

describe('limitRate (nft, in a lab host)', () => {
  let lab: Lab

  beforeAll(async () => {
    requireRoot()
    await requireNft()
    lab = await createLab({ hosts: 2 })
  })

  afterAll(async () => {
    await lab?.destroy()
  })

  it('lets about the given packets a second into the host and drops the rest, until the faults are cleared', async () => {
    const [h1, h2] = lab.hosts as [LabHost, LabHost]
    const TOTAL = 1000
    const RATE = 100
    await limitRate(h2, RATE)
    let limited: number
    try {
      const count = await countDatagrams(h2)
      const started = performance.now()
      await sendDatagrams(h1, h2, TOTAL)
      const seconds = (performance.now() - started) / 1000
      limited = await count()
      console.log(
        `[limitRate] ${RATE}/s into ${h2.name}: ${limited} of ${TOTAL} datagrams arrived in ${seconds.toFixed(2)} s`,
      )
      // The limit lets a small burst (nft's default, 5 packets) through on top of the rate.
      expect(limited).toBeGreaterThanOrEqual(RATE * 0.5)
      expect(limited).toBeLessThanOrEqual(RATE * seconds * 1.5 + 10)
    } finally {
      await clearNetworkFaults(h2)
    }
    const count = await countDatagrams(h2)
    await sendDatagrams(h1, h2, TOTAL)
    const unlimited = await count()
    console.log(`[limitRate] after clearNetworkFaults: ${unlimited} of ${TOTAL} arrived`)
    expect(unlimited).toBeGreaterThanOrEqual(TOTAL * 0.98)
  })
})
