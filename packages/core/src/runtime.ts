import type { Logger } from 'pino'
import type { Connection } from './connection.js'
import type { Mesh, ResultCache } from './mesh-api.js'
import type { ServerHandle } from './server.js'
import { TimerSet } from './timers.js'

/** The state a running worker owns: everything `stop()` must end. Internal. */
export class WorkerRuntime {
  readonly logger: Logger
  readonly timers: TimerSet
  readonly connections = new Set<Connection>()
  readonly servers = new Set<ServerHandle>()
  stopped = false
  /** Set when the worker runs inside a node. */
  mesh: Mesh | undefined
  cache: ResultCache | undefined
  /** Told when a server with a `publish` name starts listening and when it stops. */
  onPublish: ((server: ServerHandle, codec: string) => void) | undefined
  onUnpublish: ((server: ServerHandle) => void) | undefined
  readonly onError: (error: unknown) => void

  constructor(logger: Logger, onError: (error: unknown) => void) {
    this.logger = logger
    this.onError = onError
    this.timers = new TimerSet(onError)
  }
}
