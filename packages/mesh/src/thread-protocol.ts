/**
 * Messages between a node's main thread and a worker thread. Arguments and results are
 * MessagePack bytes, so a value means the same thing locally as across hosts.
 */
import type { WorkerSelector } from '@wmesh/core'
import type { DirectoryNode } from './direct-router.js'
import type { DirectInit } from './direct-server.js'
import type { SerializedError } from './remote-error.js'

/** What a worker thread is started with (`workerData`). */
export interface ThreadInit {
  file: string
  node: string
  name: string | undefined
  key: string | undefined
  instance: number | undefined
  logLevel: string
  callTimeout: number
  /** Set when the worker takes and makes direct calls to workers of other nodes. */
  direct: (DirectInit & { localId: string }) | undefined
}

/** Main thread to worker thread. */
export type ToThread =
  | { t: 'create'; args: Uint8Array }
  | { t: 'call'; id: number; method: string; arg: Uint8Array; cast: boolean }
  | { t: 'reply'; id: number; ok: true; value: Uint8Array }
  | { t: 'reply'; id: number; ok: false; error: SerializedError }
  | { t: 'stop'; timeout: number }
  /** The node's view, for routing direct calls; sent when it changes. */
  | { t: 'directory'; self: string; nodes: DirectoryNode[] }

/** What a worker can ask of its node. */
export type ThreadRequest =
  | {
      op: 'call'
      target: string
      selector: WorkerSelector
      method: string
      arg: Uint8Array
      timeout: number | undefined
    }
  | { op: 'cast'; target: string; selector: WorkerSelector; method: string; arg: Uint8Array }
  | { op: 'askResult'; target: string; selector: WorkerSelector; key: string }
  | { op: 'newWorker'; target: string; key: string; data: Uint8Array; node: string | undefined }
  | { op: 'delete'; target: string; selector: WorkerSelector }
  | { op: 'info'; target: string | undefined; selector: WorkerSelector }
  | { op: 'resolveService'; target?: undefined; name: string; node: string | undefined }
  | { op: 'services'; target?: undefined }
  | { op: 'nodes'; target?: undefined }

/** Worker thread to main thread. */
export type FromThread =
  | { t: 'loaded'; name: string; methods: string[] }
  | { t: 'load-failed'; error: SerializedError }
  /** `create` finished; `direct` is the port taking direct calls, if any. */
  | { t: 'ready'; direct: number | undefined }
  | { t: 'result'; id: number; ok: true; value: Uint8Array }
  | { t: 'result'; id: number; ok: false; error: SerializedError }
  | { t: 'request'; id: number; request: ThreadRequest }
  | { t: 'cache-set'; key: string; value: Uint8Array }
  | { t: 'cache-delete'; key: string }
  | { t: 'publish'; name: string; host: string; port: number; codec: string }
  | { t: 'unpublish'; port: number }
  | { t: 'stopped' }
