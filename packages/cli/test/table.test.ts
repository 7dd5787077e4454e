import { describe, expect, it } from 'vitest'
import { renderTable } from '../src/table.js'

describe('renderTable', () => {
  it('lines columns up two spaces apart, right-aligning numbers, with no trailing spaces', () => {
    const text = renderTable(
      [{ header: 'NODE' }, { header: 'RTT', right: true }, { header: 'VERSION' }],
      [
        ['n1', '0.42ms', '0.1.0'],
        ['node-b', '12ms', '0.1.0'],
      ],
    )
    expect(text.split('\n')).toEqual(['NODE       RTT  VERSION', 'n1      0.42ms  0.1.0', 'node-b    12ms  0.1.0'])
  })

  it('cuts the widest shrinkable column (with …) so every line fits the width', () => {
    const long = `worker-${'x'.repeat(100)}`
    const text = renderTable(
      [{ header: 'WORKER', shrink: true }, { header: 'NODE', shrink: true }, { header: 'STATE' }],
      [[long, 'n1', 'running']],
      80,
    )
    const lines = text.split('\n')
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(80)
    expect(lines[1]).toMatch(/^worker-x+…\s+n1\s+running$/)
  })

  it('ignores colour escapes when measuring', () => {
    const bold = (s: string) => `\x1b[1m${s}\x1b[22m`
    const text = renderTable([{ header: bold('A') }, { header: 'B' }], [['aaaa', 'b']])
    expect(text.split('\n')[1]).toBe('aaaa  b')
  })
})
