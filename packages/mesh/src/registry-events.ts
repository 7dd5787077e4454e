import type { EventEmitter } from 'node:events'
import { type MeshEvents, nodeInfo, serviceInfo, workerInfo } from './mesh-types.js'
import type { Registry } from './registry.js'

/** Re-emits a registry's events on `target` in their public shapes (NodeInfo, WorkerInfo, ServiceInfo). */
export function forwardRegistryEvents(
  registry: Registry,
  target: EventEmitter<MeshEvents>,
  rtt: (id: string) => number | undefined,
): void {
  registry.on('node:up', ({ node }) => target.emit('node:up', nodeInfo(node, rtt(node.id))))
  registry.on('node:down', ({ node, reason }) =>
    target.emit('node:down', { ...nodeInfo(node, undefined), reason: reason ?? 'down' }),
  )
  registry.on('worker:up', ({ node, worker }) => target.emit('worker:up', workerInfo(worker, { name: node })))
  registry.on('worker:down', ({ node, worker, reason }) =>
    target.emit('worker:down', { ...workerInfo(worker, { name: node }), reason: reason ?? 'down' }),
  )
  registry.on('service:up', ({ node, service }) => target.emit('service:up', serviceInfo(service, { name: node })))
  registry.on('service:down', ({ node, service, reason }) =>
    target.emit('service:down', { ...serviceInfo(service, { name: node }), reason: reason ?? 'down' }),
  )
}
