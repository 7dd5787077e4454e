/**
 * Faults for the multi-host lab, as functions: process faults (kill, pause, resume) and
 * network faults made with nft inside one host's namespace (drop a share of packets, cut
 * one pair of hosts, limit the packet rate). Every nft fault lives in a table of its own,
 * `wmesh_fault`, so `clearNetworkFaults` removes all of them at once and nothing else.
 * Latency, stalls and corruption need the user-space proxy in `proxy.ts` (the kernel here
 * has no netem).
 */
import type { ChildProcess } from 'node:child_process'
import { execFile } from 'node:child_process'
import { readdir, readFile } from 'node:fs/promises'
import { promisify } from 'node:util'
import type { LabHost } from './netns.js'

const run = promisify(execFile)
const TABLE = 'wmesh_fault'

/** Runs `nft -f -` with `script` inside the host's namespace. */
async function nft(host: LabHost, script: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = execFile('ip', ['netns', 'exec', host.ns, 'nft', '-f', '-'], (error, _stdout, stderr) => {
      if (error) reject(new Error(`nft in ${host.name} failed: ${stderr.trim() || error.message}\n${script}`))
      else resolve()
    })
    child.stdin?.end(script)
  })
}

/** Throws a clear message when nft is missing (scripts/install-test-deps.sh installs it). */
export async function requireNft(): Promise<void> {
  try {
    await run('nft', ['--version'])
  } catch {
    throw new Error('the packet-loss and pair-partition faults need nft: run scripts/install-test-deps.sh as root')
  }
}

/** Creates the fault table with an input and an output chain, if missing. */
async function ensureTable(host: LabHost): Promise<void> {
  await nft(
    host,
    [
      `table inet ${TABLE} {`,
      '  chain in { type filter hook input priority -10; policy accept; }',
      '  chain out { type filter hook output priority -10; policy accept; }',
      '}',
    ].join('\n'),
  )
}

/**
 * Drops `percent` % of the packets that arrive at the host on `eth0` (at random, per
 * packet), as TESTING.md shows. Loopback inside the host is untouched.
 */
export async function dropPackets(host: LabHost, percent: number): Promise<void> {
  if (!(percent > 0 && percent <= 100)) throw new Error(`dropPackets: percent must be 1-100, got ${percent}`)
  await ensureTable(host)
  await nft(host, `add rule inet ${TABLE} in iifname "eth0" numgen random mod 100 < ${Math.round(percent)} drop`)
}

/** Cuts traffic between `host` and `peer` both ways (rules in `host` only; others are unaffected). */
export async function cutPair(host: LabHost, peer: LabHost): Promise<void> {
  await ensureTable(host)
  await nft(
    host,
    [
      `add rule inet ${TABLE} in iifname "eth0" ip saddr ${peer.ip} drop`,
      `add rule inet ${TABLE} out oifname "eth0" ip daddr ${peer.ip} drop`,
    ].join('\n'),
  )
}

/** Lets at most `packetsPerSecond` packets a second into the host on `eth0`; drops the rest. */
export async function limitRate(host: LabHost, packetsPerSecond: number): Promise<void> {
  await ensureTable(host)
  await nft(
    host,
    `add rule inet ${TABLE} in iifname "eth0" limit rate over ${Math.round(packetsPerSecond)}/second drop`,
  )
}

/** Removes every nft fault of the host (idempotent). */
export async function clearNetworkFaults(host: LabHost): Promise<void> {
  await nft(host, `table inet ${TABLE} {}\ndelete table inet ${TABLE}`)
}

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null
}

/** SIGKILLs the process and resolves once it has exited. */
export async function kill(child: ChildProcess): Promise<void> {
  if (!alive(child)) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGCONT')
  child.kill('SIGKILL')
  await exited
}

/**
 * Freezes the process (SIGSTOP): its sockets stay open, the kernel still accepts connects
 * into the backlog, nothing is answered. Resume with `resume`.
 *
 * With `ip netns exec` as a wrapper, `child` is the wrapper, which execs the node: the pid
 * is the node's own.
 */
export function pause(child: ChildProcess): void {
  if (alive(child)) child.kill('SIGSTOP')
}

/** Thaws a paused process (SIGCONT). */
export function resume(child: ChildProcess): void {
  if (alive(child)) child.kill('SIGCONT')
}

/** Number of open file descriptors of a process (from /proc). */
export async function fdCount(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length
}

/** Resident set size of a process in bytes (VmRSS in /proc/<pid>/status): threads included. */
export async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kib = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1]
  if (kib === undefined) throw new Error(`no VmRSS in /proc/${pid}/status (has it exited?)`)
  return Number(kib) * 1024
}
