import { NodeDownError, RemoteError, TimeoutError, WmeshError } from '@wmesh/core'
import { describe, expect, it } from 'vitest'
import { ExitCode, exitCodeFor } from '../src/exit-codes.js'
import { formatFailure } from '../src/fail.js'

class AuthError extends WmeshError {
  override readonly code = 'ERR_AUTH'
}

describe('exitCodeFor', () => {
  it('maps error codes to the documented exit codes', () => {
    expect(exitCodeFor(new RemoteError('boom', 'E_CUSTOM', 'Error', undefined))).toBe(ExitCode.remote)
    expect(exitCodeFor(new TimeoutError('slow'))).toBe(ExitCode.timeout)
    expect(exitCodeFor(new AuthError('wrong secret'))).toBe(ExitCode.auth)
    expect(exitCodeFor(new Error('bug'))).toBe(ExitCode.unexpected)
  })

  it('lets an authentication failure inside "cannot reach any node" decide the exit code', () => {
    const wrapped = new NodeDownError('cannot reach any node', { cause: new AuthError('wrong secret') })
    expect(exitCodeFor(wrapped)).toBe(ExitCode.auth)
    expect(exitCodeFor(new NodeDownError('cannot reach any node'))).toBe(ExitCode.nodeDown)
  })
})

describe('formatFailure', () => {
  it('prints a remote message as one line with its control characters shown', () => {
    const error = new Error('bad\x1b]0;PWNED\x07 input\nsecond line')
    expect(formatFailure(error)).toBe('wmesh: bad\\x1b]0;PWNED\\x07 input second line (run with --verbose for details)')
  })
})
