/**
 * The pre-authentication phase of a link on a real socket: frames capped at
 * MAX_HANDSHAKE_FRAME (checked from the header), one deadline for the whole handshake,
 * and nothing but handshake messages parsed until the peer is authenticated.
 */
import type { Socket } from 'node:net'
import { FrameDecoder, msgpackCodec } from '@wmesh/core'
import { OutboundQueue } from '@wmesh/core/internal'
import { HandshakeError, HandshakeTimeoutError, LinkClosedError } from './link-errors.js'
import type { LinkHandshake } from './link-handshake.js'
import { MAX_HANDSHAKE_FRAME, type PeerIdentity } from './link-messages.js'
import type { RefusalLog } from './refusal-log.js'

/** The outcome of a successful handshake, handed over synchronously so no byte is lost. */
export interface Authenticated {
  peer: PeerIdentity
  /** The socket's write queue (it may still hold the WELCOME). */
  queue: OutboundQueue
  /** Bytes that arrived after the last handshake frame: the peer's first messages. */
  leftover: Uint8Array | undefined
}

export interface PreAuthOptions {
  timeout: number
  /** Where a failed handshake is reported (a flood from one address becomes a few lines). */
  refusals: RefusalLog
  /** Called inside the socket's 'data' event, with the socket paused. */
  onAuthenticated(result: Authenticated): void
  /** Called once with the error, after one warning is logged and the socket is closing. */
  onFailed(error: Error): void
}

/** Drives `machine` over `socket` until it authenticates the peer or fails. */
export function runPreAuth(socket: Socket, machine: LinkHandshake, options: PreAuthOptions): void {
  const { timeout } = options
  const queue = new OutboundQueue(socket)
  const frames = new FrameDecoder({ maxFrameSize: MAX_HANDSHAKE_FRAME })
  const send = (message: unknown): void => msgpackCodec.write(message, queue, MAX_HANDSHAKE_FRAME)
  let settled = false
  /** Bytes the peer sent: a connection closed before sending any is a port probe, not an attack. */
  let received = 0

  const cleanup = (): void => {
    settled = true
    clearTimeout(timer)
    socket.off('data', onData)
    socket.off('error', onError)
    socket.off('close', onClose)
  }
  const fail = (error: Error): void => {
    if (settled) return
    cleanup()
    // Late socket errors (a reset while the refusal is flushed) must not go unhandled.
    socket.on('error', () => {})
    const peer = `${socket.remoteAddress}:${socket.remotePort}`
    // Health checks (a TCP liveness probe every few seconds) would otherwise fill the log.
    const level = received === 0 && (error as { code?: string }).code === 'ERR_LINK_CLOSED' ? 'debug' : 'warn'
    options.refusals.refused(
      socket.remoteAddress ?? 'unknown',
      level,
      { code: (error as { code?: string }).code, peer },
      `link handshake with ${peer} failed: ${error.message}`,
    )
    const refusal = machine.refusal
    if (refusal && socket.writable) {
      send(refusal)
      queue.flush()
      socket.destroySoon()
    } else {
      queue.discard()
      socket.destroy()
    }
    options.onFailed(error)
  }
  const onData = (chunk: Buffer): void => {
    received += chunk.length
    try {
      frames.push(chunk)
      while (frames.nextFrame()) {
        const step = machine.receiveFrame(
          (frames.frameSource as Uint8Array).subarray(frames.frameStart, frames.frameEnd),
        )
        if (step.reply) send(step.reply)
        if (step.peer) {
          // Every earlier chunk was consumed frame by frame, so what is left lies in this one.
          const rest = frames.bufferedBytes
          cleanup()
          socket.pause()
          const leftover = rest > 0 ? chunk.subarray(chunk.length - rest) : undefined
          options.onAuthenticated({ peer: step.peer, queue, leftover })
          return
        }
      }
    } catch (error) {
      fail(preAuthError(error))
    }
  }
  const onError = (error: Error): void => {
    fail(new LinkClosedError(`the connection failed during the link handshake: ${error.message}`, { cause: error }))
  }
  const onClose = (): void => {
    fail(new LinkClosedError('the peer closed the connection during the link handshake; check its log for why'))
  }
  const timer = setTimeout(() => {
    fail(
      new HandshakeTimeoutError(
        `the link handshake did not complete within ${timeout} ms (${machine.state}): the peer is hung, overloaded, or not a wmesh node`,
      ),
    )
  }, timeout)
  socket.on('data', onData)
  socket.on('error', onError)
  socket.on('close', onClose)
  const hello = machine.start()
  if (hello) send(hello)
}

/** Frame-level failures before authentication become handshake errors; ours pass through. */
function preAuthError(error: unknown): Error {
  const code = (error as { code?: string }).code
  if (code === 'ERR_FRAME_TOO_LARGE' || code === 'ERR_EMPTY_FRAME') {
    return new HandshakeError(
      `the peer sent a handshake frame of a bad size (limit ${MAX_HANDSHAKE_FRAME} bytes); it is not a wmesh link endpoint`,
      { cause: error },
    )
  }
  return error as Error
}
