import { isIPv6 } from 'node:net'

/** `host:port`, with IPv6 addresses in brackets (`[::1]:4000`) so the text parses back. */
export function formatAddress(host: string, port: number): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`
}

/** The largest delay Node timers honour; beyond it they fire after 1 ms. */
export const MAX_TIMER_MS = 2_147_483_647
