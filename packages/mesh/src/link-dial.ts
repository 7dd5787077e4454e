/**
 * Dialing and listening for links, TCP or TLS-PSK, in one place for every kind of
 * endpoint (node, client, worker thread).
 */
import { createRequire } from 'node:module'
import { connect as netConnect, createServer as netCreateServer, type Server, type Socket } from 'node:net'
import { TimeoutError } from '@wmesh/core'
import { Link, type LinkComponents, type LinkInit, tlsConnectOptions, tlsServerOptions } from './link.js'

const require = createRequire(import.meta.url)
/** node:tls, loaded on first use: about 2 MB a process without TLS links need not carry. */
const tlsModule = (): typeof import('node:tls') => require('node:tls') as typeof import('node:tls')

export interface DialInit {
  host: string
  port: number
  /** Wrap the link in TLS 1.3 with a key derived from the secret. */
  tls: boolean
  /** Deadline for the TCP (and TLS) connect, in ms. */
  connectTimeout: number
  /** Holds the socket until its handshake settles, so an owner that stops can end it. */
  handshaking?: Set<Socket>
}

/** Connects to `host:port` and runs the link handshake as the dialer. */
export async function dialLink(dial: DialInit, init: LinkInit, components: LinkComponents): Promise<Link> {
  const { host, port, tls, handshaking } = dial
  const socket: Socket = tls
    ? tlsModule().connect({ host, port, ...tlsConnectOptions(init.secret, init.cluster) })
    : netConnect({ host, port, noDelay: true })
  if (!handshaking) return connectAndEstablish(socket, dial, init, components)
  handshaking.add(socket)
  try {
    return await connectAndEstablish(socket, dial, init, components)
  } finally {
    handshaking.delete(socket)
  }
}

async function connectAndEstablish(
  socket: Socket,
  { host, port, tls, connectTimeout }: DialInit,
  init: LinkInit,
  components: LinkComponents,
): Promise<Link> {
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new TimeoutError(`connect to ${host}:${port} timed out`))
    }, connectTimeout)
    socket.once(tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer)
      resolve()
    })
    socket.once('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
  })
  return Link.establish(socket, init, components)
}

/**
 * A server whose every connection (after TLS, when on) is handed to `accept`. Refused TLS
 * handshakes are reported through `onTlsError`.
 */
export function createLinkServer(
  tls: { secret: Uint8Array; cluster: string } | undefined,
  accept: (socket: Socket) => void,
  onTlsError: (error: Error, socket: Socket) => void,
): Server {
  const server = tls
    ? tlsModule().createServer(tlsServerOptions(tls.secret, tls.cluster))
    : netCreateServer({ noDelay: true })
  server.on(tls ? 'secureConnection' : 'connection', accept)
  if (tls) server.on('tlsClientError', onTlsError)
  return server
}
