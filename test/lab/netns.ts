/**
 * The multi-host test lab: simulated hosts as Linux network namespaces on one bridge, as
 * in TESTING.md. Traffic stays inside namespaces this lab created, so mDNS is safe here
 * (and only here). Needs root and `ip` (iproute2).
 */
import { type ChildProcess, execFile, execFileSync, type SpawnOptions, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** One simulated host: a network namespace with `eth0` on the lab bridge. */
export interface LabHost {
  /** `h1`, `h2`, ... */
  name: string
  /** The namespace name (unique per run). */
  ns: string
  /** IPv4 address of `eth0`. */
  ip: string
  /** Spawns `ip netns exec <ns> cmd ...args`; the lab kills it on destroy. */
  exec(cmd: string, args: string[], opts?: SpawnOptions): ChildProcess
}

/** A running lab. */
export interface Lab {
  /** Prefix of every namespace of this lab. */
  prefix: string
  /** Name of the hub namespace that holds the bridge. */
  hub: string
  hosts: LabHost[]
  /** Cuts the host off the bridge (its veth in the hub goes down). */
  partition(host: LabHost): Promise<void>
  /** Reconnects a partitioned host. */
  heal(host: LabHost): Promise<void>
  /** Kills every process started in the lab, then deletes its namespaces. Idempotent. */
  destroy(): Promise<void>
}

/** Runs a command on a lab host to its end; resolves with its exit code and output (stdout and stderr). */
export async function runOn(host: LabHost, cmd: string, args: string[]): Promise<{ code: number | null; out: string }> {
  const child = host.exec(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString()
  })
  child.stderr?.on('data', (chunk: Buffer) => {
    out += chunk.toString()
  })
  const [code] = (await once(child, 'exit')) as [number | null]
  return { code, out }
}

/** Every lab namespace starts with this, then the owner's pid in base 36, then `x`. */
const NS_TAG = 'wl'

/** Throws unless running as root (namespaces need CAP_SYS_ADMIN). */
export function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new Error('the network-namespace lab needs root (ip netns); run the lab tests as root or in the CI container')
  }
}

async function ip(...args: string[]): Promise<void> {
  try {
    await run('ip', args)
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim()
    throw new Error(`ip ${args.join(' ')} failed: ${stderr || (error as Error).message}`)
  }
}

async function netnsExec(ns: string, ...cmd: string[]): Promise<void> {
  await ip('netns', 'exec', ns, ...cmd)
}

function listNamespaces(): string[] {
  const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
  return out
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter(Boolean)
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Kills whatever still runs in `ns` (grandchildren included), then deletes it. Sync: runs on exit. */
function deleteNamespaceSync(ns: string): void {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split('\n').filter(Boolean)
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL')
      } catch {}
    }
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' })
  } catch {}
}

/** Deletes namespaces left by lab owners that died without cleaning up (SIGKILL, crash). */
function reapStaleLabs(): void {
  const pattern = new RegExp(`^${NS_TAG}([0-9a-z]+)x[0-9a-f]+-`)
  for (const ns of listNamespaces()) {
    const owner = pattern.exec(ns)?.[1]
    if (owner && !pidAlive(Number.parseInt(owner, 36))) deleteNamespaceSync(ns)
  }
}

const liveLabs = new Set<() => void>()
let exitHookInstalled = false

/**
 * Creates a hub namespace with a bridge (multicast snooping off, so every host hears
 * mDNS) and `hosts` host namespaces `h1..hN`, each with `eth0` at 10.77.X.I/24 (X per
 * run), loopback up, multicast routed to eth0 and IPv6 off on eth0. About 1 s for three
 * hosts. Remember `destroy()` in a `finally`; it also runs on process exit.
 */
export async function createLab(options: { hosts: number; prefix?: string }): Promise<Lab> {
  requireRoot()
  if (!Number.isInteger(options.hosts) || options.hosts < 1 || options.hosts > 250) {
    throw new Error(`createLab: hosts must be 1-250, got ${options.hosts}`)
  }
  reapStaleLabs()
  const prefix = options.prefix ?? `${NS_TAG}${process.pid.toString(36)}x${randomBytes(2).toString('hex')}`
  const subnet = `10.77.${(process.pid % 250) + 1}`
  const hub = `${prefix}-H`
  const namespaces: string[] = []
  const children = new Set<ChildProcess>()
  let destroyed = false

  const destroySync = () => {
    if (destroyed) return
    destroyed = true
    liveLabs.delete(destroySync)
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    for (const ns of namespaces.reverse()) deleteNamespaceSync(ns)
  }
  liveLabs.add(destroySync)
  if (!exitHookInstalled) {
    exitHookInstalled = true
    process.on('exit', () => {
      for (const destroy of [...liveLabs]) destroy()
    })
  }

  const hosts: LabHost[] = []
  try {
    namespaces.push(hub)
    await ip('netns', 'add', hub)
    await ip('-n', hub, 'link', 'set', 'lo', 'up')
    await ip(
      '-n',
      hub,
      'link',
      'add',
      'br0',
      'type',
      'bridge',
      'mcast_snooping',
      '0',
      'stp_state',
      '0',
      'forward_delay',
      '0',
    )
    await ip('-n', hub, 'link', 'set', 'br0', 'up')
    for (let i = 1; i <= options.hosts; i++) {
      const ns = `${prefix}-h${i}`
      namespaces.push(ns)
      await ip('netns', 'add', ns)
      await ip('-n', ns, 'link', 'set', 'lo', 'up')
      await ip('-n', hub, 'link', 'add', `v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns)
      await ip('-n', hub, 'link', 'set', `v${i}`, 'master', 'br0', 'up')
      // Before the address: no IPv6 link-local address, so mDNS advertises only the lab IPv4.
      await netnsExec(ns, 'sysctl', '-qw', 'net.ipv6.conf.eth0.disable_ipv6=1')
      await ip('-n', ns, 'addr', 'add', `${subnet}.${i}/24`, 'dev', 'eth0')
      await ip('-n', ns, 'link', 'set', 'eth0', 'multicast', 'on', 'up')
      // Without this route mDNS sends fail silently (ENETUNREACH).
      await ip('-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0')
      hosts.push({
        name: `h${i}`,
        ns,
        ip: `${subnet}.${i}`,
        exec(cmd, args, opts = {}) {
          if (destroyed) throw new Error(`lab ${prefix} is destroyed`)
          const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], opts)
          children.add(child)
          child.once('exit', () => children.delete(child))
          return child
        },
      })
    }
  } catch (error) {
    destroySync()
    throw error
  }

  const vethOf = (host: LabHost) => {
    const index = hosts.indexOf(host)
    if (index < 0) throw new Error(`${host.name} is not a host of lab ${prefix}`)
    return `v${index + 1}`
  }
  return {
    prefix,
    hub,
    hosts,
    partition: async (host) => ip('-n', hub, 'link', 'set', vethOf(host), 'down'),
    heal: async (host) => ip('-n', hub, 'link', 'set', vethOf(host), 'up'),
    async destroy() {
      if (destroyed) return
      const exits = [...children].map(
        (child) =>
          new Promise<void>((resolve) =>
            child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve()),
          ),
      )
      for (const child of children) child.kill('SIGKILL')
      await Promise.all(exits)
      destroySync()
    },
  }
}
