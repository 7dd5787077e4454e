import {
  type CallOptions,
  type NewWorkerOptions,
  type NodeInfo,
  packValue,
  type ServiceInfo,
  type WorkerInfo,
  type WorkerSelector,
} from '@wmesh/core'
import type { CallOutcome } from './mesh-types.js'
import { relayError } from './remote-error.js'
import type { ThreadRequest, ToThread } from './thread-protocol.js'
import { NIL, unpackTop } from './values.js'

/** What serving a worker thread's requests asks of its node: the `Mesh` operations, on encoded values. */
export interface ThreadRequestHost {
  /** A call routed to any node; resolves to the encoded result. */
  call(name: string, selector: WorkerSelector, method: string, arg: Uint8Array, timeout?: number): Promise<Uint8Array>
  /** `node: 'all'`: the call on every node that runs the worker. */
  callAll(
    name: string,
    selector: WorkerSelector,
    method: string,
    arg: Uint8Array,
    options: CallOptions,
  ): Promise<CallOutcome[]>
  cast(name: string, selector: WorkerSelector, method: string, arg: Uint8Array): void
  /** Resolves to `[value]` or `[]`, encoded. */
  askResult(name: string, selector: WorkerSelector, key: string): Promise<Uint8Array>
  newWorker(name: string, options: NewWorkerOptions): Promise<WorkerInfo>
  delete(name: string, selector: WorkerSelector): Promise<void>
  workerInfos(): WorkerInfo[]
  resolveService(name: string, node: string | undefined): ServiceInfo
  services(): Promise<ServiceInfo[]>
  nodes(): Promise<NodeInfo[]>
}

/** Serves what a worker thread asks of the mesh, replying to that same thread. */
export function serveThreadRequest(
  host: ThreadRequestHost,
  request: ThreadRequest,
  respond: (reply: ToThread) => void,
  id: number,
): void {
  const ok = (value: Uint8Array): void => respond({ t: 'reply', id, ok: true, value })
  const fail = (error: unknown): void => respond({ t: 'reply', id, ok: false, error: relayError(error) })
  const run = async (): Promise<Uint8Array> => {
    switch (request.op) {
      case 'call':
        if (request.selector.node === 'all') {
          const outcomes = await host.callAll(request.target, request.selector, request.method, request.arg, {
            timeout: request.timeout,
          })
          return packValue(outcomes.map(serializeOutcome))
        }
        return host.call(request.target, request.selector, request.method, request.arg, request.timeout)
      case 'cast':
        host.cast(request.target, request.selector, request.method, request.arg)
        return NIL
      case 'askResult':
        return host.askResult(request.target, request.selector, request.key)
      case 'newWorker':
        return packValue(
          await host.newWorker(request.target, {
            key: request.key,
            data: unpackTop(request.data),
            node: request.node,
          }),
        )
      case 'delete':
        await host.delete(request.target, request.selector)
        return NIL
      case 'info':
        return packValue(
          host
            .workerInfos()
            .filter(
              (w) =>
                request.target === undefined ||
                (w.name === request.target && (request.selector.key === undefined || w.key === request.selector.key)),
            ),
        )
      case 'resolveService':
        return packValue(host.resolveService(request.name, request.node))
      case 'services':
        return packValue(await host.services())
      case 'nodes':
        return packValue(await host.nodes())
    }
  }
  run().then(ok, fail)
}

function serializeOutcome(outcome: CallOutcome): unknown {
  return outcome.ok
    ? { node: outcome.node, ok: true, value: outcome.value }
    : { node: outcome.node, ok: false, error: relayError(outcome.error) }
}
