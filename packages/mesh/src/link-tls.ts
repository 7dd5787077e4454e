/**
 * TLS for links: TLS 1.3 with a pre-shared key derived from the cluster secret, no
 * certificates. It adds confidentiality; the wmesh handshake still runs inside it,
 * because it is what binds the node ids.
 */
import { createHash, hkdfSync } from 'node:crypto'
import type { ConnectionOptions, TlsOptions } from 'node:tls'

const CIPHERS = 'TLS_AES_128_GCM_SHA256'
/** OpenSSL limits a PSK identity to 128 bytes. */
const MAX_IDENTITY_BYTES = 128

/** PSK = HKDF-SHA256(secret, salt 'wmesh', info 'wmesh tls psk v1'), 32 bytes. */
function derivePsk(secret: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, 'wmesh', 'wmesh tls psk v1', 32))
}

/** `wmesh:<cluster>`, or a hash of the cluster name when that would be too long. */
function pskIdentity(cluster: string): string {
  const identity = `wmesh:${cluster}`
  if (Buffer.byteLength(identity) <= MAX_IDENTITY_BYTES) return identity
  return `wmesh:sha256:${createHash('sha256').update(cluster).digest('hex')}`
}

/**
 * Options for `tls.createServer` that accept only clients holding the cluster's PSK.
 * Listen for 'secureConnection', then run `Link.establish` on the socket.
 */
export function tlsServerOptions(secret: Uint8Array, cluster: string): TlsOptions {
  const psk = derivePsk(secret)
  const identity = pskIdentity(cluster)
  return {
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    ciphers: CIPHERS,
    // An unknown identity (another cluster) gets no key, so the TLS handshake fails.
    pskCallback: (_socket, offered) => (offered === identity ? psk : null),
  }
}

/**
 * Options for `tls.connect` (add `host` and `port`) that authenticate with the
 * cluster's PSK. Wait for 'secureConnect', then run `Link.establish` on the socket.
 */
export function tlsConnectOptions(secret: Uint8Array, cluster: string): ConnectionOptions {
  const psk = derivePsk(secret)
  const identity = pskIdentity(cluster)
  return {
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    ciphers: CIPHERS,
    pskCallback: () => ({ psk, identity }),
    // No certificates: the PSK authenticates the server (a server without it cannot finish the TLS handshake).
    checkServerIdentity: () => undefined,
  }
}
