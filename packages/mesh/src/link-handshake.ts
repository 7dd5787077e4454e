/**
 * The link handshake as a state machine that does no I/O: feed it the peer's messages,
 * send what it returns. Mutual challenge-response over HMAC-SHA256 with a key derived
 * from the cluster secret; both proofs cover the cluster, both ids and kinds and both
 * fresh nonces, under a role label (so a proof can be neither replayed into another
 * session nor reflected back at its sender).
 *
 *   dialer -> acceptor  HELLO     { t, v, cluster, id, kind, nonce }
 *   acceptor -> dialer  CHALLENGE { t, v, cluster, id, kind, nonce, proof: HMAC(K, transcript('acceptor')) }
 *   dialer -> acceptor  PROOF     { t, proof: HMAC(K, transcript('dialer')) }
 *   acceptor -> dialer  WELCOME   { t }
 *
 * Either side may instead send REFUSE { t, v, reason, cluster? } before closing, so the
 * other side can say why (reason is an enum: no free text crosses before authentication).
 */
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto'
import { InvalidArgumentError, packValue, unpackFrame } from '@wmesh/core'
import { AuthenticationError, HandshakeError, quotePeerString } from './link-errors.js'
import {
  EXPECTED,
  expectBytes,
  expectKeys,
  expectMap,
  expectName,
  type HandshakeState,
  type HandshakeStep,
  type HelloMessage,
  KEYS,
  LINK_PROTOCOL_VERSION,
  type LinkRole,
  MAX_NAME_LENGTH,
  NONCE_BYTES,
  type PeerIdentity,
  type PeerKind,
  PROOF_BYTES,
  REASONS,
  type RefuseMessage,
  type RefuseReason,
} from './link-messages.js'

const TRANSCRIPT_LABEL = 'wmesh-link-v1'

/** How one side of a handshake is set up. */
export interface LinkHandshakeInit {
  role: LinkRole
  cluster: string
  /** The raw cluster secret. */
  secret: Uint8Array
  localId: string
  localKind: PeerKind
  /** Our nonce; only tests set it (default: 32 fresh random bytes). */
  nonce?: Uint8Array
}

/** The fields both proofs are computed over. */
export interface TranscriptFields {
  cluster: string
  dialerId: string
  dialerKind: PeerKind
  acceptorId: string
  acceptorKind: PeerKind
  dialerNonce: Uint8Array
  acceptorNonce: Uint8Array
}

/** K = HKDF-SHA256(secret, salt 'wmesh', info 'wmesh link auth v1'), 32 bytes. */
export function deriveLinkKey(secret: Uint8Array): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', secret, 'wmesh', 'wmesh link auth v1', 32))
}

/** The unambiguous byte string a proof covers: a MessagePack array, role label included. */
export function linkTranscript(role: LinkRole, f: TranscriptFields): Uint8Array {
  return packValue([
    TRANSCRIPT_LABEL,
    role,
    f.cluster,
    f.dialerId,
    f.dialerKind,
    f.acceptorId,
    f.acceptorKind,
    Buffer.from(f.dialerNonce),
    Buffer.from(f.acceptorNonce),
  ])
}

/** HMAC-SHA256(key, transcript(role)). */
export function linkProof(key: Uint8Array, role: LinkRole, fields: TranscriptFields): Uint8Array {
  return createHmac('sha256', key).update(linkTranscript(role, fields)).digest()
}

const FIX_SECRET = 'the cluster secrets differ; give every node and client the same secret file'
const FIX_VERSION = 'run compatible wmesh versions on every node and client'

/**
 * One side of one handshake. `start()` once, then `receive` (or `receiveFrame`) each
 * message from the peer. Anything wrong throws `HandshakeError` or `AuthenticationError`
 * and leaves the state 'failed', with `refusal` holding what to tell the peer (if anything).
 */
export class LinkHandshake {
  readonly role: LinkRole
  readonly #cluster: string
  readonly #localId: string
  readonly #localKind: PeerKind
  readonly #key: Uint8Array
  readonly #nonce: Uint8Array
  #state: HandshakeState = 'idle'
  #fields: TranscriptFields | undefined
  #peer: PeerIdentity | undefined
  #refusal: RefuseMessage | undefined
  /** What to tell the peer if the step being run throws. */
  #reason: RefuseReason | null = 'malformed'

  constructor(init: LinkHandshakeInit) {
    checkLocalName('cluster', init.cluster)
    checkLocalName('localId', init.localId)
    if (init.localKind !== 'node' && init.localKind !== 'client') {
      throw new InvalidArgumentError(`localKind must be 'node' or 'client', got ${String(init.localKind)}`)
    }
    if (!(init.secret instanceof Uint8Array) || init.secret.length === 0) {
      throw new InvalidArgumentError('the cluster secret is empty; create one with `wmesh init`')
    }
    if (init.nonce !== undefined && init.nonce.length !== NONCE_BYTES) {
      throw new InvalidArgumentError(`nonce must be ${NONCE_BYTES} bytes`)
    }
    this.role = init.role
    this.#cluster = init.cluster
    this.#localId = init.localId
    this.#localKind = init.localKind
    this.#key = deriveLinkKey(init.secret)
    this.#nonce = Buffer.from(init.nonce ?? randomBytes(NONCE_BYTES))
  }

  /** Where the handshake is; 'done' once the peer is authenticated. */
  get state(): HandshakeState {
    return this.#state
  }

  /** The peer, once the handshake is done. */
  get peer(): PeerIdentity | undefined {
    return this.#state === 'done' ? this.#peer : undefined
  }

  /** After a failure: the REFUSE message to send the peer before closing, if one is due. */
  get refusal(): RefuseMessage | undefined {
    return this.#refusal
  }

  /** Begins: the dialer gets the HELLO to send, the acceptor nothing (it waits for HELLO). */
  start(): HelloMessage | undefined {
    if (this.#state !== 'idle') throw new HandshakeError('the link handshake was already started')
    if (this.role === 'acceptor') {
      this.#state = 'awaiting-hello'
      return undefined
    }
    this.#state = 'awaiting-challenge'
    return { t: 'hello', v: LINK_PROTOCOL_VERSION, ...this.#self(), nonce: this.#nonce }
  }

  /** Decodes one frame payload (at most MAX_HANDSHAKE_FRAME bytes, checked by the caller) and receives it. */
  receiveFrame(payload: Uint8Array): HandshakeStep {
    let message: unknown
    try {
      message = unpackFrame(payload)
    } catch (error) {
      this.#state = 'failed'
      this.#refusal = this.#refuse('malformed')
      throw new HandshakeError(
        `a handshake frame from the peer is not valid MessagePack; the peer is not a wmesh link endpoint`,
        { cause: error },
      )
    }
    return this.receive(message)
  }

  /** Receives one decoded message from the peer. */
  receive(message: unknown): HandshakeStep {
    const state = this.#state
    if (state === 'idle' || state === 'done' || state === 'failed') {
      throw new HandshakeError(`no handshake message is expected in state '${state}'`)
    }
    this.#reason = 'malformed'
    try {
      const msg = expectMap(message)
      if (msg.t === 'refuse') this.#refused(msg)
      const expected = EXPECTED[state]
      if (msg.t !== expected) {
        const got = typeof msg.t === 'string' ? quotePeerString(msg.t, 20) : `t of type ${typeof msg.t}`
        throw new HandshakeError(`expected a '${expected}' message from the peer, got ${got}`)
      }
      if (expected === 'hello') return this.#onHello(msg)
      if (expected === 'challenge') return this.#onChallenge(msg)
      expectKeys(msg, KEYS[expected])
      if (expected === 'proof') return this.#onProof(msg)
      this.#state = 'done'
      return { peer: this.#peer }
    } catch (error) {
      this.#state = 'failed'
      this.#refusal = this.#reason === null ? undefined : this.#refuse(this.#reason)
      throw error
    }
  }

  #self(): { cluster: string; id: string; kind: PeerKind } {
    return { cluster: this.#cluster, id: this.#localId, kind: this.#localKind }
  }

  #refuse(reason: RefuseReason): RefuseMessage {
    const refusal: RefuseMessage = { t: 'refuse', v: LINK_PROTOCOL_VERSION, reason }
    if (reason === 'cluster') refusal.cluster = this.#cluster
    return refusal
  }

  #fail(reason: RefuseReason | null, error: Error): never {
    this.#reason = reason
    throw error
  }

  /** Checks the fields HELLO and CHALLENGE share; returns the peer's identity and nonce. */
  #peerFields(msg: Record<string, unknown>, keys: readonly string[]): PeerIdentity & { nonce: Uint8Array } {
    // The version first: another version may well have other fields.
    if (!Number.isSafeInteger(msg.v)) throw new HandshakeError(`field 'v' must be an integer`)
    if (msg.v !== LINK_PROTOCOL_VERSION) {
      this.#fail(
        'version',
        new HandshakeError(
          `the peer speaks link protocol version ${msg.v}, we speak ${LINK_PROTOCOL_VERSION}; ${FIX_VERSION}`,
        ),
      )
    }
    expectKeys(msg, keys)
    const cluster = expectName(msg, 'cluster')
    if (cluster !== this.#cluster) this.#fail('cluster', clusterMismatch(cluster, this.#cluster))
    const id = expectName(msg, 'id')
    if (msg.kind !== 'node' && msg.kind !== 'client')
      throw new HandshakeError(`field 'kind' must be 'node' or 'client'`)
    const nonce = expectBytes(msg, 'nonce', NONCE_BYTES)
    if (id === this.#localId) {
      const error =
        this.role === 'acceptor'
          ? `the peer claims our own id ${quotePeerString(id)}: a node dialed itself, or two nodes share an id`
          : `the peer has our own id ${quotePeerString(id)}: we dialed ourselves`
      this.#fail('self', new HandshakeError(error))
    }
    return { id, kind: msg.kind, nonce }
  }

  #onHello(msg: Record<string, unknown>): HandshakeStep {
    const peer = this.#peerFields(msg, KEYS.hello)
    this.#peer = { id: peer.id, kind: peer.kind }
    this.#fields = {
      cluster: this.#cluster,
      dialerId: peer.id,
      dialerKind: peer.kind,
      acceptorId: this.#localId,
      acceptorKind: this.#localKind,
      dialerNonce: peer.nonce,
      acceptorNonce: this.#nonce,
    }
    this.#state = 'awaiting-proof'
    const proof = linkProof(this.#key, 'acceptor', this.#fields)
    return { reply: { t: 'challenge', v: LINK_PROTOCOL_VERSION, ...this.#self(), nonce: this.#nonce, proof } }
  }

  #onChallenge(msg: Record<string, unknown>): HandshakeStep {
    const peer = this.#peerFields(msg, KEYS.challenge)
    const proof = expectBytes(msg, 'proof', PROOF_BYTES)
    this.#peer = { id: peer.id, kind: peer.kind }
    this.#fields = {
      cluster: this.#cluster,
      dialerId: this.#localId,
      dialerKind: this.#localKind,
      acceptorId: peer.id,
      acceptorKind: peer.kind,
      dialerNonce: this.#nonce,
      acceptorNonce: peer.nonce,
    }
    this.#verify(proof, 'acceptor')
    this.#state = 'awaiting-welcome'
    return { reply: { t: 'proof', proof: linkProof(this.#key, 'dialer', this.#fields) } }
  }

  #onProof(msg: Record<string, unknown>): HandshakeStep {
    this.#verify(expectBytes(msg, 'proof', PROOF_BYTES), 'dialer')
    this.#state = 'done'
    return { reply: { t: 'welcome' }, peer: this.#peer }
  }

  #verify(proof: Uint8Array, role: LinkRole): void {
    const expected = linkProof(this.#key, role, this.#fields as TranscriptFields)
    if (proof.length === expected.length && timingSafeEqual(proof, expected)) return
    const who = quotePeerString((this.#peer as PeerIdentity).id)
    this.#fail(
      'auth',
      new AuthenticationError(`peer ${who} failed to prove it knows the cluster secret: ${FIX_SECRET}`),
    )
  }

  #refused(msg: Record<string, unknown>): never {
    this.#reason = null
    const keys = Object.hasOwn(msg, 'cluster') ? ['cluster', 'reason', 't', 'v'] : ['reason', 't', 'v']
    expectKeys(msg, keys)
    if (!REASONS.includes(msg.reason as RefuseReason)) throw new HandshakeError(`the peer refused the link`)
    const reason = msg.reason as RefuseReason
    if (reason === 'auth') {
      throw new AuthenticationError(`the peer rejected our proof of the cluster secret: ${FIX_SECRET}`)
    }
    if (reason === 'cluster') throw clusterMismatch(expectName(msg, 'cluster'), this.#cluster)
    if (reason === 'version') {
      const v = Number.isSafeInteger(msg.v) ? String(msg.v) : 'unknown'
      throw new HandshakeError(
        `the peer speaks link protocol version ${v}, we speak ${LINK_PROTOCOL_VERSION}; ${FIX_VERSION}`,
      )
    }
    if (reason === 'self') {
      throw new HandshakeError(`the peer has our own id ${quotePeerString(this.#localId)}: we dialed ourselves`)
    }
    throw new HandshakeError(`the peer refused our handshake as malformed; ${FIX_VERSION}`)
  }
}

function clusterMismatch(theirs: string, ours: string): HandshakeError {
  return new HandshakeError(
    `peer is in cluster ${quotePeerString(theirs)}, we are in ${quotePeerString(ours)}; use the same cluster name on both`,
  )
}

function checkLocalName(what: string, value: unknown): void {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_NAME_LENGTH) {
    throw new InvalidArgumentError(`${what} must be a string of 1 to ${MAX_NAME_LENGTH} characters`)
  }
}
