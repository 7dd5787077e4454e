import { networkInterfaces } from 'node:os'

/** Host names may carry dots and odd characters; node names allow letters, digits, _ . - */
export function sanitizeHostname(name: string): string {
  const clean = name.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[^A-Za-z0-9]+/, '')
  return (clean || 'node').slice(0, 63)
}

/** `host:port` or `[v6]:port` into its parts. */
export function splitHostPort(value: string): [string, number] {
  const at = value.lastIndexOf(':')
  const host = value.slice(0, at).replace(/^\[(.*)\]$/, '$1')
  return [host, Number(value.slice(at + 1))]
}

/**
 * Addresses other hosts can reach a node at: the advertised one, else the listen host,
 * else (listening on a wildcard) every external IPv4 address of this host.
 */
export function reachableAddresses(listen: string, advertise: string | undefined): string[] {
  if (advertise) return [advertise]
  const [host] = splitHostPort(listen)
  if (host !== '0.0.0.0' && host !== '::') return [host]
  const found: string[] = []
  for (const list of Object.values(networkInterfaces())) {
    for (const address of list ?? []) if (address.family === 'IPv4' && !address.internal) found.push(address.address)
  }
  return found.length > 0 ? found : ['127.0.0.1']
}

/**
 * Where to reach a peer's other ports (direct ports, a fresh link): the address its link
 * runs over when the peer advertises it (or advertises none), else its first advertised one.
 */
export function peerHost(addresses: readonly string[], linkAddress: string): string | undefined {
  const remote = linkAddress.replace(/^::ffff:/, '')
  return addresses.length === 0 || addresses.includes(remote) ? remote : addresses[0]
}
