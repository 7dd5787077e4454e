import { NodeDownError, RemoteError } from '@wmesh/core'
import { describe, expect, it } from 'vitest'
import { rebuildError } from '../src/remote-error.js'

describe('rebuildError', () => {
  it('rebuilds known codes as their classes', () => {
    const error = rebuildError({
      code: 'ERR_NODE_DOWN',
      name: 'NodeDownError',
      message: 'gone',
      stack: undefined,
      remote: false,
    })
    expect(error).toBeInstanceOf(NodeDownError)
  })

  it("never reaches Object.prototype through a peer's code", () => {
    for (const code of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      const error = rebuildError({ code, name: 'X', message: 'hostile', stack: undefined, remote: false })
      expect(error).toBeInstanceOf(RemoteError)
      expect((error as RemoteError).remoteCode).toBe(code)
    }
  })
})
