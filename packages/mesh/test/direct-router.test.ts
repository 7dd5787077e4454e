import { describe, expect, it } from 'vitest'
import type { DirectCaller, DirectEndpoint } from '../src/direct-caller.js'
import { type DirectoryNode, DirectRouter } from '../src/direct-router.js'

/** A caller whose every link is up: `peer` returns the endpoint it was asked for. */
function router(): { router: DirectRouter; retained: Array<Set<string>> } {
  const retained: Array<Set<string>> = []
  const caller = {
    peer: (endpoint: DirectEndpoint) => ({ endpoint }),
    retain: (keep: Set<string>, _nodes: Set<string>) => retained.push(keep),
  } as unknown as DirectCaller
  return { router: new DirectRouter(caller), retained }
}

const worker = (name: string, direct: number | undefined, extra: Partial<DirectoryNode['workers'][number]> = {}) => ({
  name,
  key: undefined,
  instance: 0,
  state: 'running' as const,
  methods: ['echo'],
  direct,
  ...extra,
})

const nodes: DirectoryNode[] = [
  { id: 'a:1', name: 'a', host: '10.0.0.1', workers: [worker('front', 7001)] },
  { id: 'b:1', name: 'b', host: '10.0.0.2', workers: [worker('echo', 7101), worker('echo', 7102, { instance: 1 })] },
  { id: 'c:1', name: 'c', host: '10.0.0.3', workers: [worker('echo', 7201), worker('keyed', 7202, { key: 'k1' })] },
]

const portOf = (peer: unknown) => (peer as { endpoint: DirectEndpoint } | undefined)?.endpoint.port

describe('DirectRouter', () => {
  it('spreads calls over the nodes running the worker, and over the instances of each', () => {
    const { router: r, retained } = router()
    r.update('a:1', nodes)
    expect([...(retained[0] ?? [])].sort()).toEqual([
      '10.0.0.2:7101',
      '10.0.0.2:7102',
      '10.0.0.3:7201',
      '10.0.0.3:7202',
    ])
    const ports = Array.from({ length: 8 }, () => portOf(r.route('echo', {}, 'echo')))
    expect(ports.filter((p) => p === 7201)).toHaveLength(4)
    expect(ports.filter((p) => p === 7101)).toHaveLength(2)
    expect(ports.filter((p) => p === 7102)).toHaveLength(2)
  })

  it('leaves to the node: a local instance, an unknown method, a node without direct ports, node "all"', () => {
    const { router: r } = router()
    r.update('b:1', nodes)
    expect(r.route('echo', {}, 'echo')).toBeUndefined() // b runs echo itself
    r.update('a:1', nodes)
    expect(r.route('echo', { node: 'c' }, 'nope')).toBeUndefined()
    r.update('a:1', [
      nodes[0] as DirectoryNode,
      { ...(nodes[1] as DirectoryNode), workers: [worker('echo', undefined)] },
    ])
    expect(r.route('echo', {}, 'echo')).toBeUndefined()
    expect(r.route('echo', { node: 'all' }, 'echo')).toBeUndefined()
  })

  it('honours node (by name or id) and key selectors', () => {
    const { router: r } = router()
    r.update('a:1', nodes)
    expect(portOf(r.route('echo', { node: 'c' }, 'echo'))).toBe(7201)
    expect(portOf(r.route('echo', { node: 'c:1' }, 'echo'))).toBe(7201)
    expect(portOf(r.route('keyed', { key: 'k1' }, 'echo'))).toBe(7202)
    expect(r.route('keyed', { key: 'other' }, 'echo')).toBeUndefined()
    expect(r.route('keyed', {}, 'echo')).toBeUndefined()
    expect(r.route('front', { node: 'a' }, 'echo')).toBeUndefined() // our own node
  })

  it('skips instances that are not running', () => {
    const { router: r } = router()
    r.update('a:1', [
      nodes[0] as DirectoryNode,
      { id: 'b:1', name: 'b', host: '10.0.0.2', workers: [worker('echo', 7101, { state: 'backoff' })] },
    ])
    expect(r.route('echo', {}, 'echo')).toBeUndefined()
  })
})
