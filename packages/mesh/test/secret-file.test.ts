import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { MeshNode } from '@wmesh/mesh'
import { afterEach, describe, expect, it } from 'vitest'
import { startNode } from './helpers.js'

const nodes: MeshNode[] = []
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.stop()))
})

async function startWithSecretMode(mode: number) {
  const secretFile = join(mkdtempSync(join(tmpdir(), 'wmesh-secret-')), 'secret')
  writeFileSync(secretFile, 'a secret of enough length\n')
  chmodSync(secretFile, mode)
  const { node, logs } = await startNode({ listen: '127.0.0.1:0', mdns: false, secretFile })
  nodes.push(node)
  return logs.lines.filter((l) => /readable by every user/.test(String(l.msg)))
}

describe('the secret file', () => {
  it('warns once when every user of the host can read it', async () => {
    const warnings = await startWithSecretMode(0o644)
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatchObject({ level: 40, mode: '0644' })
  })

  it('says nothing for owner-only or group-readable files (how Kubernetes mounts secrets)', async () => {
    expect(await startWithSecretMode(0o600)).toEqual([])
    expect(await startWithSecretMode(0o440)).toEqual([])
  })
})
