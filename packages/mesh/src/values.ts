import { packValue, unpackFrame } from '@wmesh/core'

/** MessagePack nil: the encoded result of a method that returns nothing. */
export const NIL = packValue(undefined)

/**
 * Decodes a call's argument or result. A bare nil at the top level becomes `undefined`, so
 * `call('m')` reaches `m(undefined)` (default parameters apply) and a method that returns
 * nothing resolves to `undefined`. Nested nils stay `null`.
 */
export function unpackTop(bytes: Uint8Array): unknown {
  if (bytes.length === 1 && bytes[0] === 0xc0) return undefined
  return unpackFrame(bytes)
}
