/**
 * Messages of a direct link: a worker thread calling a worker thread of another node over
 * an authenticated link of its own, without passing through either node's main thread.
 * Each message is one small MessagePack array whose first element says what it is; the
 * argument or result travels inline, so it is encoded and decoded once.
 *
 *   caller -> callee  [CALL, id, method, arg]   answered by OK or ERR with the same id
 *   caller -> callee  [CAST, method, arg]       never answered
 *   callee -> caller  [OK, id, value] | [ERR, id, SerializedError]
 *   callee -> caller  [GOAWAY]                  stopping: send new calls through the nodes
 */
import { createHash } from 'node:crypto'
import type { SerializedError } from './remote-error.js'

export const DIRECT = { CALL: 0, CAST: 1, OK: 2, ERR: 3, GOAWAY: 4 } as const

export type DirectMessage =
  | [typeof DIRECT.CALL, number, string, unknown]
  | [typeof DIRECT.CAST, string, unknown]
  | [typeof DIRECT.OK, number, unknown]
  | [typeof DIRECT.ERR, number, SerializedError]
  | [typeof DIRECT.GOAWAY]

const MAX_METHOD = 200

const isId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
const isMethod = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= MAX_METHOD
const isOptString = (v: unknown): boolean => v === undefined || v === null || typeof v === 'string'

function isSerializedError(v: unknown): v is SerializedError {
  if (typeof v !== 'object' || v === null) return false
  const e = v as Record<string, unknown>
  return (
    isOptString(e.code) &&
    typeof e.name === 'string' &&
    typeof e.message === 'string' &&
    isOptString(e.stack) &&
    typeof e.remote === 'boolean'
  )
}

/** A message a callee may receive, or undefined if `v` is not one. */
export function parseCallerMessage(v: unknown): DirectMessage | undefined {
  if (!Array.isArray(v)) return undefined
  if (v[0] === DIRECT.CALL && v.length === 4 && isId(v[1]) && isMethod(v[2])) return v as DirectMessage
  if (v[0] === DIRECT.CAST && v.length === 3 && isMethod(v[1])) return v as DirectMessage
  return undefined
}

/** A message a caller may receive, or undefined if `v` is not one. */
export function parseCalleeMessage(v: unknown): DirectMessage | undefined {
  if (!Array.isArray(v)) return undefined
  if (v[0] === DIRECT.OK && v.length === 3 && isId(v[1])) return v as DirectMessage
  if (v[0] === DIRECT.ERR && v.length === 3 && isId(v[1]) && isSerializedError(v[2])) {
    const error = v[2] as SerializedError
    // msgpack carries absent optional fields as nil.
    return [DIRECT.ERR, v[1], { ...error, code: error.code ?? undefined, stack: error.stack ?? undefined }]
  }
  if (v[0] === DIRECT.GOAWAY && v.length === 1) return v as DirectMessage
  return undefined
}

/** A top-level nil is `undefined` on the receiving side, as for calls through the nodes. */
export function fromWire(value: unknown): unknown {
  return value === null ? undefined : value
}

/** How a worker instance is named in logs and errors: `echo#0`, or `echo[key]` for a keyed one. */
export function instanceLabel(name: string, key: string | undefined, instance: number | undefined): string {
  return key !== undefined ? `${name}[${key}]` : `${name}#${instance ?? 0}`
}

/**
 * The id a worker instance's direct port proves in its handshake (the transcript the
 * secret signs covers it): its node's incarnation and its label, hashed to a fixed length
 * because keys may be long. A caller checks it, so a stale view whose port now belongs to
 * another worker (or another node) never reaches the wrong one.
 */
export function directIdentity(nodeId: string, label: string): string {
  return `w.${createHash('sha256').update(`${nodeId}\u0000${label}`).digest('base64url').slice(0, 27)}`
}
