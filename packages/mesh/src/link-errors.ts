/**
 * Errors of node links. Each condition is one class with a stable `code`; messages say
 * what happened and what to do, and never hold the secret or a whole untrusted payload.
 */
import { WmeshError } from '@wmesh/core'

/** The peer could not prove it knows the cluster secret (or said we could not): the secrets differ. */
export class AuthenticationError extends WmeshError {
  override readonly code = 'ERR_AUTH'
}

/** The link handshake failed: a malformed or unexpected message, another protocol version, another cluster. */
export class HandshakeError extends WmeshError {
  override readonly code = 'ERR_HANDSHAKE'
}

/** The link handshake did not complete within its deadline. */
export class HandshakeTimeoutError extends WmeshError {
  override readonly code = 'ERR_HANDSHAKE_TIMEOUT'
}

/** No frame at all came from the peer for longer than the heartbeat timeout. */
export class HeartbeatTimeoutError extends WmeshError {
  override readonly code = 'ERR_HEARTBEAT_TIMEOUT'
}

/** The link is closed: by us (send after close) or by the peer or the network. */
export class LinkClosedError extends WmeshError {
  override readonly code = 'ERR_LINK_CLOSED'
}

/**
 * Quotes a string that came from an unauthenticated peer for an error message or a log
 * line: printable ASCII only, at most `max` characters.
 */
export function quotePeerString(value: string, max = 64): string {
  const clean = value.replace(/[^\x20-\x7e]/g, '?')
  return JSON.stringify(clean.length > max ? `${clean.slice(0, max)}...` : clean)
}
