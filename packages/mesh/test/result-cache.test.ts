import { describe, expect, it } from 'vitest'
import { ResultStore } from '../src/result-cache.js'

const bytes = (n: number) => new Uint8Array(n)

describe('ResultStore', () => {
  it('keeps each worker under its byte budget, dropping its oldest values first', () => {
    const store = new ResultStore({ maxBytes: 1000, maxTotalBytes: 10_000 })
    for (let i = 0; i < 10; i++) expect(store.set('w', undefined, `r${i}`, bytes(300))).toBe(true)
    expect(store.totalBytes).toBe(900)
    expect(store.get('w', undefined, 'r6')).toBeUndefined()
    expect(store.get('w', undefined, 'r7')?.length).toBe(300)
    expect(store.get('w', undefined, 'r9')?.length).toBe(300)
  })

  it('keeps the node under its total across workers and keys, oldest first, and refuses a value too large', () => {
    const store = new ResultStore({ maxBytes: 1000, maxTotalBytes: 2000 })
    for (let k = 0; k < 5; k++) store.set('session', `user-${k}`, 'state', bytes(600))
    expect(store.totalBytes).toBe(1800)
    expect(store.get('session', 'user-0', 'state')).toBeUndefined()
    expect(store.get('session', 'user-1', 'state')).toBeUndefined()
    expect(store.get('session', 'user-4', 'state')?.length).toBe(600)
    expect(store.set('w', undefined, 'huge', bytes(1001))).toBe(false)
    expect(store.totalBytes).toBe(1800)
  })

  it('counts a replaced value once, and frees what a deleted worker stored', () => {
    const store = new ResultStore({ maxEntries: 3 })
    store.set('w', 'k', 'a', bytes(10))
    store.set('w', 'k', 'a', bytes(20))
    expect(store.totalBytes).toBe(20)
    for (const entry of ['b', 'c', 'd']) store.set('w', 'k', entry, bytes(1))
    // Entry cap 3: 'a' (re-inserted first) was the oldest.
    expect(store.get('w', 'k', 'a')).toBeUndefined()
    store.delete('w', 'k', 'b')
    store.drop('w', 'k')
    expect(store.totalBytes).toBe(0)
  })
})
