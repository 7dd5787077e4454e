import {
  AbortError,
  InvalidArgumentError,
  NodeDownError,
  NodeStoppingError,
  NoSuchMethodError,
  NoSuchWorkerError,
  RemoteError,
  TimeoutError,
  type WmeshError,
  WorkerDownError,
} from '@wmesh/core'

/** An error as it crosses a thread or a link: enough to rebuild a typed error on the other side. */
export interface SerializedError {
  code: string | undefined
  name: string
  message: string
  stack: string | undefined
  /** True when user code (the called method) threw it; it is then rebuilt as `RemoteError`. */
  remote: boolean
}

const MAX_MESSAGE = 2000
const MAX_STACK = 8000

/**
 * Turns any thrown value into a `SerializedError`. Never throws: a method may throw
 * anything (an object without a prototype, an error whose getters throw), and failing to
 * describe it must not take its worker down.
 */
export function serializeError(error: unknown, remote: boolean): SerializedError {
  try {
    return describeThrown(error, remote)
  } catch {
    return { code: undefined, name: 'Error', message: `${typeName(error)} thrown`, stack: undefined, remote }
  }
}

/** `[object Object]`-style name of a value, which works for any value. */
function typeName(value: unknown): string {
  return Object.prototype.toString.call(value)
}

function describeThrown(error: unknown, remote: boolean): SerializedError {
  if (error instanceof RemoteError && remote) {
    // A method that let a RemoteError through: keep the original remote description.
    return { code: error.remoteCode, name: error.remoteName, message: error.message, stack: error.remoteStack, remote }
  }
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code
    return {
      code: typeof code === 'string' ? code : undefined,
      name: String(error.name),
      message: String(error.message).slice(0, MAX_MESSAGE),
      stack: typeof error.stack === 'string' ? error.stack.slice(0, MAX_STACK) : undefined,
      remote,
    }
  }
  // String() throws for an object without a prototype (no toString).
  const text = typeof error === 'object' && error !== null && !('toString' in error) ? typeName(error) : String(error)
  return { code: undefined, name: 'Error', message: text.slice(0, MAX_MESSAGE), stack: undefined, remote }
}

const byCode: Record<string, new (message: string) => WmeshError> = {
  ERR_NO_SUCH_WORKER: NoSuchWorkerError,
  ERR_NO_SUCH_METHOD: NoSuchMethodError,
  ERR_TIMEOUT: TimeoutError,
  ERR_NODE_DOWN: NodeDownError,
  ERR_NODE_STOPPING: NodeStoppingError,
  ERR_WORKER_DOWN: WorkerDownError,
  ERR_INVALID_ARGUMENT: InvalidArgumentError,
  ERR_ABORTED: AbortError,
}

/**
 * Serializes an error that is being passed on (from a node to a caller): a `RemoteError`
 * keeps the original remote code, name and stack; any other error keeps its own code.
 */
export function relayError(error: unknown): SerializedError {
  return serializeError(error, error instanceof RemoteError)
}

/** Rebuilds a typed error: `RemoteError` for what a method threw, else the class of its code. */
export function rebuildError(error: SerializedError): Error {
  if (!error.remote) {
    // Own keys only: a peer's code of '__proto__' or 'constructor' must not reach Object.prototype.
    const ErrorClass = error.code && Object.hasOwn(byCode, error.code) ? byCode[error.code] : undefined
    if (ErrorClass) return new ErrorClass(error.message)
  }
  return new RemoteError(error.message, error.code, error.name, error.stack)
}
