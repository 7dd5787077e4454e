/**
 * `npm run lab -- --hosts 5`: a lab to play with. Starts N simulated hosts (network
 * namespaces on one bridge), runs a wmesh node with an echo worker on each (found by mDNS),
 * prints how to reach every host, and tears everything down on Ctrl-C. Needs root.
 */
import { createWriteStream } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { meshFixtures, startNodeProcess, tempCluster, wmeshBin } from '../support/node-process.js'
import { createLab, requireRoot } from './netns.js'

const { values } = parseArgs({ options: { hosts: { type: 'string', default: '3' } } })
const count = Number(values.hosts)
if (!Number.isInteger(count) || count < 1 || count > 20) {
  console.error('lab: --hosts must be a number from 1 to 20')
  process.exit(2)
}
requireRoot()
const lab = await createLab({ hosts: count })
const { dir, secretFile } = tempCluster()
const nodes = lab.hosts.map((host) => {
  const node = startNodeProcess(
    dir,
    {
      name: host.name,
      listen: `${host.ip}:7946`,
      mdns: true,
      interface: host.ip,
      secretFile,
      workers: { echo: { file: `${meshFixtures}echo-worker.mjs` } },
    },
    ['ip', 'netns', 'exec', host.ns],
  )
  const log = createWriteStream(join(dir, `${host.name}.log`))
  node.child.stdout?.pipe(log)
  return node
})
await Promise.all(nodes.map((n) => n.waitFor((l) => String(l.msg).startsWith(`node ${n.name} running`), 'running')))

console.log(`lab: ${count} hosts up (namespaces ${lab.prefix}*), cluster secret ${secretFile}\n`)
for (const host of lab.hosts) {
  console.log(`  ${host.name}  ${host.ip.padEnd(12)} logs: ${join(dir, `${host.name}.log`)}`)
  console.log(`      shell:  ip netns exec ${host.ns} bash`)
  console.log(`      nodes:  ip netns exec ${host.ns} node ${wmeshBin} nodes --secret-file ${secretFile}`)
}
console.log('\nCtrl-C tears the lab down.')

let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  for (const node of nodes) node.child.kill('SIGTERM')
  await Promise.all(nodes.map((n) => n.exited))
  await lab.destroy()
  process.exit(0)
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
