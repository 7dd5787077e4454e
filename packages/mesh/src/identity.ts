import { randomBytes } from 'node:crypto'

/**
 * Who a node is. The incarnation is chosen at each start and sorts by start time, so of
 * two live nodes with the same name every node can tell the newer one from the ids alone.
 */
export interface NodeIdentity {
  name: string
  /** Start time in base 36 (fixed width) + random suffix, e.g. `0lq3x9k2a7-4f1c9e`. */
  incarnation: string
  /** `name:incarnation`. */
  id: string
  startedAt: number
}

export function newIdentity(name: string, now = Date.now()): NodeIdentity {
  const incarnation = `${now.toString(36).padStart(10, '0')}-${randomBytes(3).toString('hex')}`
  return { name, incarnation, id: `${name}:${incarnation}`, startedAt: now }
}

/** Splits a node id into name and incarnation; undefined if it is not one. */
export function parseNodeId(id: string): { name: string; incarnation: string } | undefined {
  const at = id.lastIndexOf(':')
  if (at <= 0 || at === id.length - 1) return undefined
  return { name: id.slice(0, at), incarnation: id.slice(at + 1) }
}

/** True if `a` is a newer incarnation than `b` (same name assumed). Deterministic on ties. */
export function isNewerIncarnation(a: string, b: string): boolean {
  return a > b
}
