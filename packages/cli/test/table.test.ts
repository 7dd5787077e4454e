import { styleText } from 'node:util'
import { describe, expect, it } from 'vitest'
import { safeText } from '../src/style.js'
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

describe('text from the cluster', () => {
  it('reaches the terminal with its control characters shown, never run: no forged rows, no retitling', () => {
    const key = 'evil\x1b]0;PWNED\x07\x1b[2J\nfake  row'
    const text = renderTable([{ header: 'KEY' }, { header: 'STATE' }], [[key, styleText('green', 'running')]], 200)
    expect(text.split('\n')).toHaveLength(2)
    expect(text).not.toContain('\x1b]')
    expect(text).not.toContain('\x07')
    expect(text).toContain('evil\\x1b]0;PWNED\\x07\\x1b[2J\\nfake  row')
    // The CLI's own colour still goes through.
    expect(text).toContain(styleText('green', 'running'))
  })

  it('safeText shows every C0 and C1 control, and whole colour sequences only when asked', () => {
    expect(safeText('a\tb\rc\x00d\x7fe\x9bf')).toBe('a\\tb\\rc\\x00d\\x7fe\\x9bf')
    expect(safeText('\x1b[31mred\x1b[0m')).toBe('\\x1b[31mred\\x1b[0m')
    expect(safeText('\x1b[31mred\x1b[0m', true)).toBe('\x1b[31mred\x1b[0m')
  })
})
