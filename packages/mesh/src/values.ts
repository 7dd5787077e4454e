import { unpackFrame } from '@wmesh/core'

/**
 * Decodes a call's argument or result. A bare nil at the top level becomes `undefined`, so
 * `call('m')` reaches `m(undefined)` (default parameters apply) and a method that returns
 * nothing resolves to `undefined`. Nested nils stay `null`.
 */
export function unpackTop(bytes: Uint8Array): unknown {
  if (bytes.length === 1 && bytes[0] === 0xc0) return undefined
  return unpackFrame(bytes)
}
