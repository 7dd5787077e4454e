import { isDeepStrictEqual } from 'node:util'
import { packValue } from '@wmesh/core'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { AuthenticationError, HandshakeError } from '../src/link-errors.js'
import {
  deriveLinkKey,
  LinkHandshake,
  type LinkHandshakeInit,
  linkProof,
  type TranscriptFields,
} from '../src/link-handshake.js'

/** Fuzz budget: WMESH_FUZZ_SCALE multiplies it (1 in CI; larger for a long local run). */
const fuzzRuns = (n: number) => Math.max(1, Math.round(n * Number(process.env.WMESH_FUZZ_SCALE ?? 1)))

import type { ChallengeMessage, HandshakeMessage, HelloMessage } from '../src/link-messages.js'

const secret = Buffer.from('correct horse battery staple')

function dialer(overrides: Partial<LinkHandshakeInit> = {}): LinkHandshake {
  return new LinkHandshake({
    role: 'dialer',
    cluster: 'prod',
    secret,
    localId: 'alpha:1',
    localKind: 'client',
    ...overrides,
  })
}
function acceptor(overrides: Partial<LinkHandshakeInit> = {}): LinkHandshake {
  return new LinkHandshake({
    role: 'acceptor',
    cluster: 'prod',
    secret,
    localId: 'beta:1',
    localKind: 'node',
    ...overrides,
  })
}

/** What crosses the wire: encoded and decoded, as the link does it. */
function wire(message: unknown): Uint8Array {
  return packValue(message)
}

/** Runs an honest handshake; returns the four messages in order. */
function complete(d: LinkHandshake, a: LinkHandshake): HandshakeMessage[] {
  a.start()
  const hello = d.start() as HandshakeMessage
  const challenge = a.receiveFrame(wire(hello)).reply as HandshakeMessage
  const proof = d.receiveFrame(wire(challenge)).reply as HandshakeMessage
  const welcome = a.receiveFrame(wire(proof)).reply as HandshakeMessage
  d.receiveFrame(wire(welcome))
  return [hello, challenge, proof, welcome]
}

function fieldsOf(hello: HelloMessage, challenge: ChallengeMessage): TranscriptFields {
  return {
    cluster: hello.cluster,
    dialerId: hello.id,
    dialerKind: hello.kind,
    acceptorId: challenge.id,
    acceptorKind: challenge.kind,
    dialerNonce: hello.nonce,
    acceptorNonce: challenge.nonce,
  }
}

function acceptorStarted(): LinkHandshake {
  const a = acceptor()
  a.start()
  return a
}

function isOurs(error: unknown): boolean {
  return error instanceof HandshakeError || error instanceof AuthenticationError
}

describe('LinkHandshake', () => {
  it('authenticates both sides and tells each who the other is', () => {
    const d = dialer()
    const a = acceptor()
    const messages = complete(d, a)
    expect(messages.map((m) => m.t)).toEqual(['hello', 'challenge', 'proof', 'welcome'])
    expect(d.state).toBe('done')
    expect(a.state).toBe('done')
    expect(d.peer).toEqual({ id: 'beta:1', kind: 'node' })
    expect(a.peer).toEqual({ id: 'alpha:1', kind: 'client' })
  })

  it('uses a fresh 32-byte nonce per session', () => {
    const first = dialer().start() as HelloMessage
    const second = dialer().start() as HelloMessage
    expect(first.nonce).toHaveLength(32)
    expect(Buffer.compare(first.nonce, second.nonce)).not.toBe(0)
  })

  it('fails on the dialer with AuthenticationError when the acceptor has another secret, and tells the acceptor', () => {
    const d = dialer()
    const a = acceptor({ secret: Buffer.from('another secret') })
    a.start()
    const challenge = a.receive(d.start()).reply
    expect(() => d.receive(challenge)).toThrow(AuthenticationError)
    expect(d.state).toBe('failed')
    expect(d.refusal).toEqual({ t: 'refuse', v: 1, reason: 'auth' })
    expect(() => a.receive(d.refusal)).toThrow(AuthenticationError)
  })

  it('fails on the acceptor with AuthenticationError when the dialer proves with another secret', () => {
    const a = acceptor()
    a.start()
    const hello = dialer().start() as HelloMessage
    const challenge = a.receive(hello).reply as ChallengeMessage
    const forged = linkProof(deriveLinkKey(Buffer.from('guess')), 'dialer', fieldsOf(hello, challenge))
    expect(() => a.receive({ t: 'proof', proof: forged })).toThrow(AuthenticationError)
    expect(a.refusal?.reason).toBe('auth')
    expect(a.peer).toBeUndefined()
  })

  it('rejects a PROOF recorded from an earlier session, even with the same HELLO replayed', () => {
    const recorded = complete(dialer(), acceptor())
    const a = acceptor()
    a.start()
    a.receive(recorded[0]) // replayed HELLO: same dialer nonce, but a fresh acceptor nonce
    expect(() => a.receive(recorded[2])).toThrow(AuthenticationError)
  })

  it("rejects the acceptor's own proof reflected back as the dialer's proof", () => {
    const a = acceptor()
    a.start()
    const challenge = a.receive(dialer().start()).reply as ChallengeMessage
    expect(() => a.receive({ t: 'proof', proof: challenge.proof })).toThrow(AuthenticationError)
  })

  it("rejects a dialer-role proof offered as the acceptor's proof (role labels)", () => {
    const d = dialer()
    const a = acceptor()
    a.start()
    const hello = d.start() as HelloMessage
    const challenge = a.receive(hello).reply as ChallengeMessage
    const dialerRole = linkProof(deriveLinkKey(secret), 'dialer', fieldsOf(hello, challenge))
    expect(() => d.receive({ ...challenge, proof: dialerRole })).toThrow(AuthenticationError)
  })

  it('refuses another cluster with a clear error on both sides', () => {
    const d = dialer({ cluster: 'staging' })
    const a = acceptor()
    a.start()
    const hello = d.start()
    expect(() => a.receive(hello)).toThrow(HandshakeError)
    expect(a.refusal).toEqual({ t: 'refuse', v: 1, reason: 'cluster', cluster: 'prod' })
    expect(() => acceptorStarted().receive(hello)).toThrow('peer is in cluster "staging", we are in "prod"')
    expect(() => d.receive(a.refusal)).toThrow('peer is in cluster "prod", we are in "staging"')
  })

  it('refuses another protocol version before looking at the other fields', () => {
    const a = acceptor()
    a.start()
    const hello = { ...(dialer().start() as HelloMessage), v: 2, extra: 'v2 field' }
    expect(() => a.receive(hello)).toThrow(/version 2, we speak 1/)
    expect(a.refusal?.reason).toBe('version')
    const d = dialer()
    d.start()
    expect(() => d.receive({ t: 'refuse', v: 2, reason: 'version' })).toThrow(/version 2, we speak 1/)
  })

  it('refuses a HELLO that claims our own id, and the dialer learns it dialed itself', () => {
    const a = acceptor()
    a.start()
    const d = dialer({ localId: 'beta:1' })
    expect(() => a.receive(d.start())).toThrow(/our own id/)
    expect(a.refusal?.reason).toBe('self')
    expect(() => d.receive(a.refusal)).toThrow(/we dialed ourselves/)
  })

  const hello = (): Record<string, unknown> => ({ ...(dialer().start() as HelloMessage) })
  const malformed: Array<[string, () => unknown]> = [
    ['a nonce of 31 bytes', () => ({ ...hello(), nonce: Buffer.alloc(31) })],
    ['a nonce of 33 bytes', () => ({ ...hello(), nonce: Buffer.alloc(33) })],
    ['a nonce that is a string', () => ({ ...hello(), nonce: 'x'.repeat(32) })],
    ['an empty id', () => ({ ...hello(), id: '' })],
    ['an id of 201 characters', () => ({ ...hello(), id: 'x'.repeat(201) })],
    ['an id that is a number', () => ({ ...hello(), id: 7 })],
    ['an unknown kind', () => ({ ...hello(), kind: 'admin' })],
    ['a version that is a string', () => ({ ...hello(), v: '1' })],
    ['an extra field', () => ({ ...hello(), admin: true })],
    ['a missing field', () => ({ ...hello(), nonce: undefined })],
    ['an array', () => ['hello', 1]],
    ['null', () => null],
    ['bytes', () => Buffer.from('hello')],
    ['a Map', () => new Map(Object.entries(hello()))],
    ['a PROOF out of order', () => ({ t: 'proof', proof: Buffer.alloc(32) })],
    ['an unknown type', () => ({ t: 'hi' })],
  ]
  for (const [what, make] of malformed) {
    it(`refuses a HELLO with ${what} as malformed`, () => {
      const a = acceptor()
      a.start()
      const message = make() as Record<string, unknown> | null
      if (message && 'nonce' in message && message.nonce === undefined) delete message.nonce
      expect(() => a.receive(message)).toThrow(HandshakeError)
      expect(a.state).toBe('failed')
      expect(a.refusal?.reason).toBe('malformed')
      expect(() => a.receive(hello())).toThrow(HandshakeError)
    })
  }

  it('refuses bytes that are not MessagePack', () => {
    const a = acceptor()
    a.start()
    expect(() => a.receiveFrame(Buffer.from([0xc1]))).toThrow(HandshakeError)
    expect(a.refusal?.reason).toBe('malformed')
  })

  it('quotes peer strings briefly and printably, and never mentions the secret', () => {
    const a = acceptor()
    a.start()
    const hostile = `\u001b[31m${'A'.repeat(190)}`
    let message = ''
    try {
      a.receive({ ...hello(), cluster: hostile })
    } catch (error) {
      message = (error as Error).message
    }
    expect(message).toMatch(/^peer is in cluster "\?\[31mA+\.\.\."/)
    expect(message).not.toContain('\u001b')
    expect(message).not.toContain('A'.repeat(100))
    expect(message).not.toContain(secret.toString())
  })

  it('only ever throws its own errors on arbitrary input, and never authenticates it', () => {
    fc.assert(
      fc.property(fc.constantFrom('dialer', 'acceptor'), fc.array(fc.anything(), { maxLength: 3 }), (role, inputs) => {
        const side = role === 'dialer' ? dialer() : acceptor()
        side.start()
        for (const input of inputs) {
          try {
            side.receive(input)
          } catch (error) {
            if (!isOurs(error)) throw error
            return
          }
          expect(side.state).not.toBe('done')
        }
      }),
      { numRuns: fuzzRuns(2000) },
    )
  })

  it('only ever throws its own errors on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const a = acceptor()
        a.start()
        try {
          a.receiveFrame(bytes)
        } catch (error) {
          if (!isOurs(error)) throw error
        }
        expect(a.state).not.toBe('done')
      }),
      { numRuns: fuzzRuns(2000) },
    )
  })

  it('lets no change to any message in transit end in a completed dialer or a wrong identity', () => {
    const mutation = fc.record({
      index: fc.integer({ min: 0, max: 3 }),
      key: fc.constantFrom('t', 'v', 'cluster', 'id', 'kind', 'nonce', 'proof', 'extra'),
      action: fc.oneof(
        fc.record({ kind: fc.constant('set' as const), value: fc.anything() }),
        fc.record({ kind: fc.constant('delete' as const) }),
        fc.record({ kind: fc.constant('flip' as const), at: fc.nat(31), bit: fc.nat(7) }),
      ),
    })
    fc.assert(
      fc.property(mutation, ({ index, key, action }) => {
        const d = dialer()
        const a = acceptor()
        a.start()
        const receive = [a, d, a, d]
        let message: unknown = d.start()
        let changed = false
        try {
          for (let i = 0; i < 4 && message !== undefined; i++) {
            let bytes = wire(message)
            if (i === index) {
              const copy = { ...(message as Record<string, unknown>) }
              const field = copy[key]
              if (action.kind === 'set') copy[key] = action.value
              else if (action.kind === 'delete') delete copy[key]
              else if (field instanceof Uint8Array) {
                const flipped = Buffer.from(field)
                const at = action.at % flipped.length
                flipped[at] = (flipped[at] as number) ^ (1 << action.bit)
                copy[key] = flipped
              }
              const mutated = wire(copy)
              changed = !isDeepStrictEqual(Buffer.from(mutated), Buffer.from(bytes))
              bytes = mutated
            }
            message = (receive[i] as LinkHandshake).receiveFrame(bytes).reply
          }
        } catch (error) {
          if (!isOurs(error)) throw error
        }
        if (changed) expect(d.state).not.toBe('done')
        else expect([d.state, a.state]).toEqual(['done', 'done'])
        if (a.state === 'done') expect(a.peer).toEqual({ id: 'alpha:1', kind: 'client' })
        if (d.state === 'done') expect(d.peer).toEqual({ id: 'beta:1', kind: 'node' })
      }),
      { numRuns: fuzzRuns(1500) },
    )
  })
})
