/**
 * What nodes (and clients) say to each other over an authenticated link. Every message is
 * validated after decoding: authentication proves who sent it, not that it is well formed.
 */
import { InvalidArgumentError, type WorkerInfo } from '@wmesh/core'
import type { SerializedError } from './remote-error.js'

/** Protocol version carried in handshakes and mDNS adverts. */
export const PROTOCOL_VERSION = 1

/** One worker instance as the registry records it. */
export interface WorkerEntry {
  name: string
  key: string | undefined
  instance: number | undefined
  state: WorkerInfo['state']
  restarts: number
  lastExit: string | undefined
  startedAt: number | undefined
  methods: string[]
  /** Port where this instance takes direct calls from workers of other nodes, if it does. */
  direct?: number | undefined
}

/** One published server. */
export interface ServiceEntry {
  name: string
  host: string
  port: number
  codec: string
  worker: string
  key: string | undefined
}

/** Everything a node says about itself; only the node itself writes it. */
export interface NodeEntry {
  id: string
  name: string
  incarnation: string
  startedAt: number
  version: string
  /** Addresses other hosts can reach this node at. */
  addresses: string[]
  /** Link port. */
  port: number
  /** Bumped by the owner on every change; a higher rev replaces a lower one. */
  rev: number
  workers: WorkerEntry[]
  services: ServiceEntry[]
}

export type ClusterMessage =
  /** The sender's own entry (or, node to client, any node's entry). Sent on link up and on each change. */
  | { t: 'entry'; entry: NodeEntry }
  /** Periodic: the sender's current rev, so a peer that missed a change asks for it. */
  | { t: 'digest'; id: string; rev: number }
  /** Please send your entry. */
  | { t: 'want' }
  /** Node to client: every entry of the view has been sent; the client's registry is complete. */
  | { t: 'synced' }
  /** Node to client: a node left the view. */
  | { t: 'gone'; id: string; reason: string }
  | {
      t: 'call'
      id: number
      target: string
      key: string | undefined
      method: string
      arg: Uint8Array
      timeout: number
      cast: boolean
      /** From clients only: the node (name or id) to run on; absent means any. */
      node?: string
    }
  | { t: 'op'; id: number; op: ClusterOp; node?: string }
  | { t: 'result'; id: number; ok: true; value: Uint8Array }
  | { t: 'result'; id: number; ok: false; error: SerializedError }
  /** Graceful leave: the peer is stopping; mark it down now instead of waiting for the link to drop. */
  | { t: 'bye'; reason: string }
  /** Node to node: our link to `peer` has been silent for `silent` ms; do you hear it? Answered by `heard`. */
  | { t: 'suspect'; id: number; peer: string; silent: number }
  /** Whether the sender heard the peer of `suspect` `id` within its heartbeatTimeout. */
  | { t: 'heard'; id: number; heard: boolean }
  /** First message on a new link: it replaces our current one, which is stalled. Answered by `relinked`. */
  | { t: 'relink' }
  /** First message back on a relink: both sides now use the new link. */
  | { t: 'relinked' }

/** Requests answered by `result`, for clients and for other nodes. */
export type ClusterOp =
  | { op: 'askResult'; target: string; key: string | undefined; entry: string }
  | { op: 'newWorker'; target: string; key: string; data: Uint8Array }
  | { op: 'delete'; target: string; key: string | undefined }
  | { op: 'ping' }
  | { op: 'stop'; reason: string }

const MAX_NAME = 200
const MAX_LIST = 10_000

/**
 * Refuses, at the caller, a worker name, key or method longer than peers accept: they drop
 * such a message as malformed, which would leave the caller waiting for its timeout.
 */
export function checkWireName(what: string, value: string | undefined): void {
  if (typeof value === 'string' && value.length > MAX_NAME) {
    throw new InvalidArgumentError(`${what} is ${value.length} characters long; at most ${MAX_NAME} cross the network`)
  }
}

/** `checkWireName` for a worker reference's name and key. */
export function checkWorkerRef(name: string, key: string | undefined): void {
  checkWireName('worker name', name)
  checkWireName('worker key', key)
}

const isString = (v: unknown, max = MAX_NAME): v is string => typeof v === 'string' && v.length <= max
const isOptString = (v: unknown): v is string | undefined => v === undefined || v === null || isString(v)
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v)
const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const STATES = new Set(['starting', 'running', 'backoff', 'stopping', 'stopped', 'failed'])

function isWorkerEntry(v: unknown): v is WorkerEntry {
  return (
    isObject(v) &&
    isString(v.name) &&
    isOptString(v.key) &&
    (v.instance === undefined || v.instance === null || isInt(v.instance)) &&
    STATES.has(v.state as string) &&
    isInt(v.restarts) &&
    (v.lastExit === undefined || v.lastExit === null || isString(v.lastExit, 4000)) &&
    (v.startedAt === undefined || v.startedAt === null || isInt(v.startedAt)) &&
    Array.isArray(v.methods) &&
    v.methods.length <= MAX_LIST &&
    v.methods.every((m) => isString(m)) &&
    (v.direct === undefined ||
      v.direct === null ||
      (isInt(v.direct) && (v.direct as number) > 0 && (v.direct as number) < 65536))
  )
}

function isServiceEntry(v: unknown): v is ServiceEntry {
  return (
    isObject(v) &&
    isString(v.name) &&
    isString(v.host) &&
    isInt(v.port) &&
    v.port > 0 &&
    v.port < 65536 &&
    isString(v.codec, 32) &&
    isString(v.worker) &&
    isOptString(v.key)
  )
}

/** Checks an entry's shape; a bad entry is refused whole. */
export function isNodeEntry(v: unknown): v is NodeEntry {
  return (
    isObject(v) &&
    isString(v.id) &&
    isString(v.name) &&
    isString(v.incarnation) &&
    // Neither part may hold the separator, or one id would read as two names.
    !v.name.includes(':') &&
    !v.incarnation.includes(':') &&
    v.id === `${v.name}:${v.incarnation}` &&
    isInt(v.startedAt) &&
    isString(v.version, 64) &&
    Array.isArray(v.addresses) &&
    v.addresses.length <= 64 &&
    v.addresses.every((a) => isString(a, 100) && a.length > 0) &&
    isInt(v.port) &&
    v.port >= 1 &&
    v.port <= 65535 &&
    isInt(v.rev) &&
    Array.isArray(v.workers) &&
    v.workers.length <= MAX_LIST &&
    v.workers.every(isWorkerEntry) &&
    Array.isArray(v.services) &&
    v.services.length <= MAX_LIST &&
    v.services.every(isServiceEntry)
  )
}

function isOp(v: unknown): v is ClusterOp {
  if (!isObject(v)) return false
  switch (v.op) {
    case 'askResult':
      return isString(v.target) && isOptString(v.key) && isString(v.entry, 1000)
    case 'newWorker':
      return isString(v.target) && isString(v.key) && isBytes(v.data)
    case 'delete':
      return isString(v.target) && isOptString(v.key)
    case 'ping':
      return true
    case 'stop':
      return isString(v.reason, 1000)
    default:
      return false
  }
}

function isSerializedError(v: unknown): v is SerializedError {
  return (
    isObject(v) &&
    isOptString(v.code) &&
    isString(v.name) &&
    isString(v.message, 10_000) &&
    (v.stack === undefined || v.stack === null || isString(v.stack, 20_000)) &&
    typeof v.remote === 'boolean'
  )
}

/** Returns the message if it is a well-formed `ClusterMessage`, else undefined. */
export function parseClusterMessage(v: unknown): ClusterMessage | undefined {
  if (!isObject(v)) return undefined
  switch (v.t) {
    case 'entry':
      return isNodeEntry(v.entry) ? (v as ClusterMessage) : undefined
    case 'digest':
      return isString(v.id) && isInt(v.rev) ? (v as ClusterMessage) : undefined
    case 'want':
    case 'synced':
    case 'relink':
    case 'relinked':
      return v as ClusterMessage
    case 'gone':
      return isString(v.id) && isString(v.reason, 1000) ? (v as ClusterMessage) : undefined
    case 'call':
      return isInt(v.id) &&
        isString(v.target) &&
        isOptString(v.key) &&
        isString(v.method) &&
        isBytes(v.arg) &&
        isInt(v.timeout) &&
        typeof v.cast === 'boolean' &&
        isOptString(v.node)
        ? (v as ClusterMessage)
        : undefined
    case 'op':
      return isInt(v.id) && isOp(v.op) && isOptString(v.node) ? (v as ClusterMessage) : undefined
    case 'result':
      if (!isInt(v.id)) return undefined
      if (v.ok === true) return isBytes(v.value) ? (v as ClusterMessage) : undefined
      return v.ok === false && isSerializedError(v.error) ? (v as ClusterMessage) : undefined
    case 'bye':
      return isString(v.reason, 1000) ? (v as ClusterMessage) : undefined
    case 'suspect':
      return isInt(v.id) && isString(v.peer) && isInt(v.silent) && v.silent >= 0 ? (v as ClusterMessage) : undefined
    case 'heard':
      return isInt(v.id) && typeof v.heard === 'boolean' ? (v as ClusterMessage) : undefined
    default:
      return undefined
  }
}
