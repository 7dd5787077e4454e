/**
 * Every error wmesh raises is a `WmeshError` with a stable `code`. Codes survive the
 * trip between nodes (a remote error is rebuilt from its code) and map to CLI exit codes.
 */
export class WmeshError extends Error {
  /** Stable, machine-readable identifier of the condition, e.g. `ERR_FRAME_TOO_LARGE`. */
  readonly code: string = 'ERR_WMESH'

  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
  }
}

/** A frame header announced more bytes than the configured limit allows. */
export class FrameTooLargeError extends WmeshError {
  override readonly code = 'ERR_FRAME_TOO_LARGE'
  constructor(
    readonly length: number,
    readonly limit: number,
  ) {
    super(`frame of ${length} bytes exceeds the limit of ${limit} bytes; raise maxFrameSize if the peer is trusted`)
  }
}

/** A frame header announced zero bytes: a msgpack frame always holds exactly one value. */
export class EmptyFrameError extends WmeshError {
  override readonly code = 'ERR_EMPTY_FRAME'
  constructor() {
    super('zero-length frame; a frame must hold exactly one MessagePack value')
  }
}

/** A complete frame did not hold exactly one valid MessagePack value. */
export class FrameDecodeError extends WmeshError {
  override readonly code = 'ERR_FRAME_DECODE'
}

/** A value could not be encoded (unsupported type, or too large for one frame). */
export class EncodeError extends WmeshError {
  override readonly code = 'ERR_ENCODE'
}

/** A TCP connect did not complete (refused, unreachable, DNS failure). The cause holds the system error. */
export class ConnectError extends WmeshError {
  override readonly code = 'ERR_CONNECT'
}

/** A TCP connect did not complete within its deadline. */
export class ConnectTimeoutError extends WmeshError {
  override readonly code = 'ERR_CONNECT_TIMEOUT'
}

/** The connection closed (or failed) while something was waiting on it. */
export class ConnectionClosedError extends WmeshError {
  override readonly code = 'ERR_CONNECTION_CLOSED'
  constructor(message = 'connection closed', options?: ErrorOptions) {
    super(message, options)
  }
}

/** The connection failed at the socket level (reset, broken pipe). The cause holds the system error. */
export class ConnectionError extends WmeshError {
  override readonly code = 'ERR_CONNECTION'
}

/**
 * `sendData` was called while the write queue already held its hard maximum.
 * The value was not queued. Wait for drain (`await handler.waitForDrain()`) before sending more.
 */
export class WriteQueueFullError extends WmeshError {
  override readonly code = 'ERR_WRITE_QUEUE_FULL'
  constructor(
    readonly queuedBytes: number,
    readonly limit: number,
  ) {
    super(
      `write queue holds ${queuedBytes} bytes, at its limit of ${limit}; wait for drain (handler.waitForDrain()) before sending more`,
    )
  }
}

/** A wait ended because its deadline passed. */
export class TimeoutError extends WmeshError {
  override readonly code = 'ERR_TIMEOUT'
}

/** A connection was closed because no whole message arrived within its `idleTimeout`. */
export class IdleTimeoutError extends WmeshError {
  override readonly code = 'ERR_IDLE_TIMEOUT'
}

/** A connection was closed because a message it had begun did not arrive whole within `frameTimeout`. */
export class FrameTimeoutError extends WmeshError {
  override readonly code = 'ERR_FRAME_TIMEOUT'
}

/** A wait ended because its AbortSignal fired. */
export class AbortError extends WmeshError {
  override readonly code = 'ERR_ABORTED'
  constructor(message = 'the operation was aborted', options?: ErrorOptions) {
    super(message, options)
  }
}

/** An operation needed a running worker, but the worker has stopped. */
export class WorkerStoppedError extends WmeshError {
  override readonly code = 'ERR_WORKER_STOPPED'
}

/** A handler or worker hook threw; the original error is the cause. */
export class HandlerError extends WmeshError {
  override readonly code = 'ERR_HANDLER'
}

/** A server could not bind (address in use, permission denied, address not available). */
export class ListenError extends WmeshError {
  override readonly code = 'ERR_LISTEN'
}

/** No running instance of the worker (or no such method on it) could take the call. */
export class NoSuchWorkerError extends WmeshError {
  override readonly code: string = 'ERR_NO_SUCH_WORKER'
}

/** The worker exists but has no public method of that name. A kind of `NoSuchWorkerError`. */
export class NoSuchMethodError extends NoSuchWorkerError {
  override readonly code = 'ERR_NO_SUCH_METHOD'
}

/** The worker instance handling a call stopped or crashed before answering. */
export class WorkerDownError extends WmeshError {
  override readonly code = 'ERR_WORKER_DOWN'
}

/** The node that was to handle a call is down or became unreachable. */
export class NodeDownError extends WmeshError {
  override readonly code = 'ERR_NODE_DOWN'
}

/** The node is shutting down and takes no new calls. */
export class NodeStoppingError extends WmeshError {
  override readonly code = 'ERR_NODE_STOPPING'
}

/** Invalid input to an API call (a bad worker name, key, or option). */
export class InvalidArgumentError extends WmeshError {
  override readonly code = 'ERR_INVALID_ARGUMENT'
}

/**
 * The called method threw. `remoteCode`, `remoteName` and `remoteStack` describe the
 * original error on the worker that ran the method.
 */
export class RemoteError extends WmeshError {
  override readonly code = 'ERR_REMOTE'
  constructor(
    message: string,
    readonly remoteCode: string | undefined,
    readonly remoteName: string,
    readonly remoteStack: string | undefined,
  ) {
    super(message)
  }
}

/** No server is published under that name (or none on the node asked for). */
export class NoSuchServiceError extends WmeshError {
  override readonly code = 'ERR_NO_SUCH_SERVICE'
}
