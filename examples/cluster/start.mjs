#!/usr/bin/env node
/**
 * `npm start`: a local 3-node cluster on loopback, joined by seeds (mDNS is off: loopback
 * has no multicast). node-a runs the seed's ServerWorker (TimeServer, published as "time"),
 * node-b runs FooWorker, which finds "time" through the registry and connects to it, and
 * node-c runs a reporter that calls FooWorker across nodes. Ctrl-C stops all three.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, writeFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const here = fileURLToPath(new URL('.', import.meta.url))
const bin = fileURLToPath(new URL('../../packages/cli/bin/wmesh.js', import.meta.url))
const secret = `${here}.wmesh.secret`
if (!existsSync(secret)) writeFileSync(secret, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 })

const color = process.stdout.isTTY && !process.env.NO_COLOR
const paint = (code, text) => (color ? `\x1b[${code}m${text}\x1b[0m` : text)
const nodes = [
  ['node-a', 36],
  ['node-b', 33],
  ['node-c', 35],
]
const children = nodes.map(([name, hue]) => {
  const child = spawn(process.execPath, [bin, 'start', '--config', `${here}${name}.json`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  createInterface({ input: child.stdout }).on('line', (line) => {
    let entry
    try {
      entry = JSON.parse(line)
    } catch {
      entry = { msg: line }
    }
    const time = new Date(entry.time ?? Date.now()).toTimeString().slice(0, 8)
    const who = entry.worker ?? entry.component ?? ''
    const level = entry.level >= 50 ? paint(31, ' ERROR') : entry.level >= 40 ? paint(33, ' WARN') : ''
    console.log(`${time} ${paint(hue, name.padEnd(6))} ${String(who).padEnd(18)}${level} ${entry.msg}`)
  })
  return child
})

let stopping = false
let exited = 0
for (const child of children) {
  child.on('exit', () => {
    exited++
    if (exited === children.length) process.exit(0)
  })
}
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    for (const child of children) child.kill(stopping ? 'SIGKILL' : 'SIGTERM')
    stopping = true
  })
}
