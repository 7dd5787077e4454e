import { setTimeout as delay } from 'node:timers/promises'
import { afterEach, describe, expect, it } from 'vitest'
import { type LoopbackCluster, loopbackCluster } from '../support/cluster.js'
import { meshFixtures } from '../support/node-process.js'

const echo = { file: `${meshFixtures}echo-worker.mjs` }
let cluster: LoopbackCluster | undefined
afterEach(async () => {
  await cluster?.stop()
  cluster = undefined
})

describe('simultaneous dials at startup', () => {
  it('never mark a healthy peer down', async () => {
    const downs: string[] = []
    for (let round = 0; round < 8; round++) {
      cluster = await loopbackCluster([{ echo }, { echo }, { echo }], { logLevel: 'debug' })
      await delay(1500)
      for (const n of cluster.nodes)
        for (const l of n.lines)
          if (/is down|closing duplicate/.test(String(l.msg))) downs.push(`${round} ${n.name}: ${l.msg}`)
      await cluster.stop()
      cluster = undefined
    }
    console.log(downs.join('\n'))
    expect(downs.filter((d) => /is down/.test(d))).toEqual([])
  }, 120_000)
})
