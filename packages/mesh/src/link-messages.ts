/**
 * The link handshake's messages: their types, the wire limits, and strict validators for
 * what arrives (exact key sets, types, lengths). See link-handshake.ts for the protocol.
 */
import { HandshakeError } from './link-errors.js'

/** Version of the link protocol carried in HELLO and CHALLENGE. */
export const LINK_PROTOCOL_VERSION = 1
/** Bytes of each side's nonce. */
export const NONCE_BYTES = 32
/** Largest frame payload accepted before authentication. */
export const MAX_HANDSHAKE_FRAME = 4096
/** Longest cluster name or id, in UTF-16 units. */
export const MAX_NAME_LENGTH = 200
/** Bytes of an HMAC-SHA256 proof. */
export const PROOF_BYTES = 32

/** What the process at the other end of a link is. */
export type PeerKind = 'node' | 'client'
/** Which end of the connection we are: the one that connected, or the one that accepted. */
export type LinkRole = 'dialer' | 'acceptor'
/** Why a side refused the handshake. */
export type RefuseReason = 'auth' | 'cluster' | 'version' | 'self' | 'malformed'

/** dialer -> acceptor: who we are, and our fresh nonce. */
export interface HelloMessage {
  t: 'hello'
  v: number
  cluster: string
  id: string
  kind: PeerKind
  nonce: Uint8Array
}
/** acceptor -> dialer: who we are, our nonce, and our proof over both. */
export interface ChallengeMessage extends Omit<HelloMessage, 't'> {
  t: 'challenge'
  proof: Uint8Array
}
/** dialer -> acceptor: the dialer's proof. */
export interface ProofMessage {
  t: 'proof'
  proof: Uint8Array
}
/** acceptor -> dialer: the dialer's proof was good; the link is up. */
export interface WelcomeMessage {
  t: 'welcome'
}
/** Either side, before closing: why the handshake failed (an enum, no free text). */
export interface RefuseMessage {
  t: 'refuse'
  v: number
  reason: RefuseReason
  /** Our cluster name, with reason 'cluster'. */
  cluster?: string
}
/** Any message of the handshake. */
export type HandshakeMessage = HelloMessage | ChallengeMessage | ProofMessage | WelcomeMessage | RefuseMessage

/** The authenticated peer. */
export interface PeerIdentity {
  id: string
  kind: PeerKind
}

/** What to do after a message: send `reply` if set; `peer` is set once authenticated. */
export interface HandshakeStep {
  reply?: HandshakeMessage
  peer?: PeerIdentity
}

/** Where one side of a handshake is. */
export type HandshakeState =
  | 'idle'
  | 'awaiting-hello'
  | 'awaiting-challenge'
  | 'awaiting-proof'
  | 'awaiting-welcome'
  | 'done'
  | 'failed'

/** The exact (sorted) fields of each message. */
export const KEYS = {
  hello: ['cluster', 'id', 'kind', 'nonce', 't', 'v'],
  challenge: ['cluster', 'id', 'kind', 'nonce', 'proof', 't', 'v'],
  proof: ['proof', 't'],
  welcome: ['t'],
} as const
/** The message each waiting state expects. */
export const EXPECTED = {
  'awaiting-hello': 'hello',
  'awaiting-challenge': 'challenge',
  'awaiting-proof': 'proof',
  'awaiting-welcome': 'welcome',
} as const
/** Every refusal reason. */
export const REASONS: readonly RefuseReason[] = ['auth', 'cluster', 'version', 'self', 'malformed']

/** A plain map (not an array, bytes or an extension type). */
export function expectMap(message: unknown): Record<string, unknown> {
  if (typeof message !== 'object' || message === null) throw new HandshakeError('handshake message is not a map')
  const proto = Object.getPrototypeOf(message)
  if (proto !== Object.prototype && proto !== null) throw new HandshakeError('handshake message is not a map')
  return message as Record<string, unknown>
}

/** Exactly these keys (sorted), no more, no fewer. */
export function expectKeys(msg: Record<string, unknown>, keys: readonly string[]): void {
  const own = Object.keys(msg)
  if (own.length !== keys.length || !own.sort().every((key, i) => key === keys[i])) {
    throw new HandshakeError(`'${String(msg.t)}' message must have exactly the fields ${keys.join(', ')}`)
  }
}

/** A string of 1 to MAX_NAME_LENGTH characters. */
export function expectName(msg: Record<string, unknown>, field: string): string {
  const value = msg[field]
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_NAME_LENGTH) {
    throw new HandshakeError(`field '${field}' must be a string of 1 to ${MAX_NAME_LENGTH} characters`)
  }
  return value
}

/** Bytes of exactly `length`. */
export function expectBytes(msg: Record<string, unknown>, field: string, length: number): Uint8Array {
  const value = msg[field]
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw new HandshakeError(`field '${field}' must be ${length} bytes`)
  }
  return value
}
