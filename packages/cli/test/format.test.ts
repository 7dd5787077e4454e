import { describe, expect, it } from 'vitest'
import { formatMs, formatUptime, parseJsonArgument, toJson } from '../src/format.js'

describe('toJson', () => {
  it('prints BigInt as exact bare digits, bytes as base64, Map and Set as object and array', () => {
    const value = { big: 2n ** 64n + 1n, bytes: Buffer.from('hi'), map: new Map([['a', 1]]), set: new Set([1, 2]) }
    expect(toJson(value)).toBe('{"big":18446744073709551617,"bytes":"aGk=","map":{"a":1},"set":[1,2]}')
  })

  it('prints undefined as null, so a method that returns nothing still prints a JSON document', () => {
    expect(toJson(undefined)).toBe('null')
  })
})

describe('parseJsonArgument', () => {
  it('hints at quoting when a bare word is given', () => {
    expect(() => parseJsonArgument('hello', 'the argument')).toThrow(
      `the argument is not valid JSON; a string needs JSON quotes: '"hello"'`,
    )
    expect(parseJsonArgument('"hello"', 'the argument')).toBe('hello')
  })
})

describe('durations', () => {
  it('shows uptimes as the two largest units and round trips with sensible precision', () => {
    expect([45_000, 192_000, 5 * 3600_000 + 4 * 60_000, 12 * 86400_000 + 3 * 3600_000].map(formatUptime)).toEqual([
      '45s',
      '3m12s',
      '5h04m',
      '12d03h',
    ])
    expect([0.4213, 3.14, 120.4, undefined].map(formatMs)).toEqual(['0.42ms', '3.1ms', '120ms', '-'])
  })
})
