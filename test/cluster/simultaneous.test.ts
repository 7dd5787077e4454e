import { execFileSync } from 'node:child_process'
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

/** Established TCP connections accepted on one of `ports` (one per link, whoever dialed). */
function linksOn(ports: number[]): number {
  const out = execFileSync('ss', ['-Htn', 'state', 'established'], { encoding: 'utf8' })
  return out
    .split('\n')
    .filter(Boolean)
    .filter((line) => {
      const [local] = line.trim().split(/\s+/).slice(2)
      return ports.includes(Number(local?.slice(local.lastIndexOf(':') + 1)))
    }).length
}

describe('simultaneous dials after a pause', () => {
  it('end with exactly one link per pair', async () => {
    cluster = await loopbackCluster([{ echo }, { echo }], { logLevel: 'debug', heartbeatTimeout: 1000 })
    const [n1, n2] = cluster.nodes
    await delay(1000)
    expect(linksOn(cluster.ports)).toBe(1)
    let duplicates = 0
    for (let round = 0; round < 4; round++) {
      n2?.child.kill('SIGSTOP')
      await delay(2500) // n1 marks n2 down and redials it into n2's backlog
      n2?.child.kill('SIGCONT') // n2 marks n1 down and redials too: both dial at once
      await delay(4000)
      duplicates = [n1, n2].flatMap((n) => n?.lines ?? []).filter((l) => l.msg === 'closing duplicate link').length
      expect(linksOn(cluster.ports)).toBe(1)
    }
    console.log('duplicate links settled:', duplicates)
  }, 60_000)
})
