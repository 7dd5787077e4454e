import { NodeDownError, RemoteError } from '@wmesh/core'
import { describe, expect, it } from 'vitest'
import { rebuildError, serializeError } from '../src/remote-error.js'

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

describe('serializeError', () => {
  it('describes anything a method may throw, and never throws itself', () => {
    const getterThrows = new Error('x')
    Object.defineProperty(getterThrows, 'message', {
      get() {
        throw new Error('no message for you')
      },
    })
    const cases: Array<[unknown, string]> = [
      [Object.create(null), '[object Object]'],
      [Object.assign(Object.create(null), { message: 'bare' }), '[object Object]'],
      [42, '42'],
      [undefined, 'undefined'],
      ['text', 'text'],
      [Object.assign(new Error('m'), { message: 7 }), '7'],
      [getterThrows, '[object Error] thrown'],
    ]
    for (const [thrown, message] of cases) {
      const serialized = serializeError(thrown, true)
      expect(serialized.message).toBe(message)
      expect(typeof serialized.name).toBe('string')
    }
  })
})
