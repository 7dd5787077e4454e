import { describe, expect, it } from 'vitest'
import type { NodeEntry } from '../src/cluster-protocol.js'
import type { DirectCaller, DirectEndpoint } from '../src/direct-caller.js'
import { directIdentity } from '../src/direct-protocol.js'
import { type DirectoryNode, DirectRouter, directoryOf } from '../src/direct-router.js'

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
  directId: direct === undefined ? undefined : `id-${direct}`,
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
      '10.0.0.2:7101/id-7101',
      '10.0.0.2:7102/id-7102',
      '10.0.0.3:7201/id-7201',
      '10.0.0.3:7202/id-7202',
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

describe('directoryOf', () => {
  it('names each direct port by the identity its worker instance proves: node incarnation and label', () => {
    const entry = {
      id: 'b:2',
      name: 'b',
      workers: [
        { name: 'echo', key: undefined, instance: 1, state: 'running', methods: ['echo'], direct: 7101 },
        { name: 'keyed', key: 'k'.repeat(500), instance: undefined, state: 'running', methods: [], direct: 7102 },
        { name: 'local', key: undefined, instance: 0, state: 'running', methods: [], direct: undefined },
      ],
    } as unknown as NodeEntry
    const [node] = directoryOf([entry], () => '10.0.0.2')
    const ids = node?.workers.map((w) => w.directId)
    expect(ids).toEqual([
      directIdentity('b:2', 'echo#1'),
      directIdentity('b:2', `keyed[${'k'.repeat(500)}]`),
      undefined,
    ])
    // A new incarnation of the node, or another instance, proves another identity; any key fits a handshake id.
    expect(ids?.[0]).not.toBe(directIdentity('b:1', 'echo#1'))
    expect(ids?.[0]).not.toBe(directIdentity('b:2', 'echo#0'))
    expect(ids?.[1]?.length).toBeLessThanOrEqual(30)
  })
})
