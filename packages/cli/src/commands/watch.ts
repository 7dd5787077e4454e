import type { NodeInfo, ServiceInfo, WorkerInfo } from '@wmesh/core'
import type { MeshClient, MeshEvents } from '@wmesh/mesh'
import type { Command } from 'commander'
import { isVerbose } from '../action.js'
import { addClusterOptions, type ClusterOptions } from '../cluster-options.js'
import { openCluster } from '../connect.js'
import { formatClock, toJson } from '../format.js'
import { print } from '../output.js'
import { Painter, safeText } from '../style.js'

/** How often watch checks which node it is linked through. */
const LINK_CHECK_MS = 500

/** One line of `wmesh watch --json` (a JSON object per line). */
export type WatchEvent = { at: string; event: string } & Record<string, unknown>

type Down = { reason: string }

function nodeEvent(event: string, n: NodeInfo & Partial<Down>): Record<string, unknown> {
  return {
    event,
    node: n.name,
    id: n.id,
    addresses: n.addresses,
    port: n.port,
    ...(n.reason === undefined ? {} : { reason: n.reason }),
  }
}

function workerEvent(event: string, w: WorkerInfo & Partial<Down>): Record<string, unknown> {
  return {
    event,
    worker: w.name,
    key: w.key ?? null,
    instance: w.instance ?? null,
    node: w.node,
    state: w.state,
    ...(w.reason === undefined ? {} : { reason: w.reason }),
  }
}

function serviceEvent(event: string, s: ServiceInfo & Partial<Down>): Record<string, unknown> {
  return {
    event,
    service: s.name,
    node: s.node,
    host: s.host,
    port: s.port,
    worker: s.worker,
    ...(s.reason === undefined ? {} : { reason: s.reason }),
  }
}

/** The text form of an event: `14:03:07.412  node:down     n3 (n3:0lq…-4f1c9e)  link closed`. */
function describe(e: Record<string, unknown>, p: Painter): string {
  const event = String(e.event)
  const colour = event.endsWith(':up') ? 'green' : event.endsWith(':down') || event === 'link:lost' ? 'red' : 'cyan'
  let what: string
  if (event.startsWith('node:')) {
    const at = (e.addresses as string[])[0]
    what = `${e.node} (${e.id})${event === 'node:up' && at ? ` at ${at}:${e.port}` : ''}`
  } else if (event.startsWith('worker:')) {
    const which = e.key !== null ? ` key ${e.key}` : e.instance !== null ? ` #${e.instance}` : ''
    what = `${e.worker}${which} on ${e.node}`
  } else if (event.startsWith('service:')) {
    what = `${e.service} on ${e.node} at ${e.host}:${e.port}`
  } else {
    what = String(e.message)
  }
  // Names, keys and reasons come from the cluster: one holding a newline could forge a line.
  const reason = e.reason === undefined ? '' : p.paint('dim', `  ${safeText(String(e.reason))}`)
  return `${p.paint('dim', formatClock(new Date()))}  ${p.paint(colour, event.padEnd(12))}  ${safeText(what)}${reason}`
}

/**
 * Prints membership, worker and service events as they happen, until SIGINT/SIGTERM
 * (exit 0). Also says when the node it watches through goes away and it links with another.
 */
export async function watchCluster(client: MeshClient, json: boolean): Promise<void> {
  const p = new Painter()
  const emit = (e: Record<string, unknown>) => {
    if (json) print(toJson({ at: new Date().toISOString(), ...e }))
    else print(describe(e, p))
  }
  const handlers: { [K in keyof MeshEvents]?: (...args: MeshEvents[K]) => void } = {
    'node:up': (n) => emit(nodeEvent('node:up', n)),
    'node:down': (n) => emit(nodeEvent('node:down', n)),
    'worker:up': (w) => emit(workerEvent('worker:up', w)),
    'worker:down': (w) => emit(workerEvent('worker:down', w)),
    'service:up': (s) => emit(serviceEvent('service:up', s)),
    'service:down': (s) => emit(serviceEvent('service:down', s)),
  }
  for (const [event, handler] of Object.entries(handlers)) {
    client.on(event as keyof MeshEvents, handler as (...args: unknown[]) => void)
  }

  let linked = client.linkedNode
  let lastLinked = linked
  const check = setInterval(() => {
    const now = client.linkedNode
    if (now === linked) {
      // Still without a link: a request makes the client look for a node again.
      if (now === undefined && lastLinked !== undefined) void client.ping(lastLinked).catch(() => {})
      return
    }
    if (now === undefined)
      emit({
        event: 'link:lost',
        node: linked ?? null,
        message: `lost the link through ${linked}; looking for another node`,
      })
    else emit({ event: 'link:up', node: now, message: `watching through ${now}` })
    linked = now
    if (now !== undefined) lastLinked = now
  }, LINK_CHECK_MS)

  await new Promise<void>((resolve) => {
    const stop = () => resolve()
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })
  clearInterval(check)
  await client.close()
}

/** Adds `wmesh watch`. */
export function registerWatch(program: Command): void {
  addClusterOptions(
    program
      .command('watch')
      .description('print node, worker and service events as they happen, until Ctrl-C')
      .addHelpText('after', '\nWith --json, one JSON object per line (NDJSON), each with "at" and "event".'),
  ).action(async (options: ClusterOptions, command: Command) => {
    const { client, settings } = await openCluster({ ...options, verbose: isVerbose(command) })
    const nodes = (await client.nodes()).length
    const workers = (await client.workers()).filter((w) => w.state === 'running').length
    const services = (await client.services()).length
    const through = (await client.nodes()).find((n) => n.id === client.linkedNode)?.name ?? client.linkedNode
    const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`
    process.stderr.write(
      `watching "${settings.cluster}" through ${through} (${count(nodes, 'node')}, ${count(workers, 'worker')}, ` +
        `${count(services, 'service')}); Ctrl-C to stop\n`,
    )
    await watchCluster(client, options.json === true)
    process.exit(0)
  })
}
