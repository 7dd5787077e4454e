import { execFileSync } from 'node:child_process'
import { stripVTControlCharacters } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cleanEnv } from './fixtures/cli/run-wmesh.js'
import { type LoopbackCluster, loopbackCluster } from './support/cluster.js'
import { freePorts, meshFixtures, wmeshBin } from './support/node-process.js'

// `wmesh` in a real terminal, driven as a person would: keys typed into a tmux pane (80
// columns), the screen read back. A private tmux server (-L) touches no one else's sessions.
const socket = `wmesh-cli-test-${process.pid}`
const session = 'cli'
const WIDTH = 80
const ESC = '\x1b'

function tmux(...args: string[]): string {
  return execFileSync('tmux', ['-L', socket, ...args], { encoding: 'utf8' })
}

/** Types a command line and presses Enter. */
function type(line: string): void {
  tmux('send-keys', '-t', session, '-l', line)
  tmux('send-keys', '-t', session, 'Enter')
}

/** The visible screen; with `escapes`, colours as escape sequences. */
function screen(escapes = false): string {
  return tmux('capture-pane', '-p', '-J', '-t', session, ...(escapes ? ['-e'] : []))
}

/** Polls the screen until `match` holds; resolves with the screen and how long it took. */
async function waitForScreen(
  match: (text: string) => boolean,
  what: string,
  timeout = 10_000,
): Promise<{ text: string; ms: number }> {
  const started = performance.now()
  for (;;) {
    const text = screen()
    if (match(text)) return { text, ms: performance.now() - started }
    if (performance.now() - started > timeout) throw new Error(`the terminal never showed ${what}:\n${text}`)
    await new Promise((resolve) => setTimeout(resolve, 40))
  }
}

/** Clears the screen and its history, so each test reads only its own output. */
async function clear(): Promise<void> {
  type('clear')
  await waitForScreen((t) => t.trim() === '$', 'a cleared screen')
  tmux('clear-history', '-t', session)
}

let cluster: LoopbackCluster

beforeAll(async () => {
  const echo = { file: `${meshFixtures}echo-worker.mjs` }
  cluster = await loopbackCluster([{ echo }, { echo }])
  const env = cleanEnv({
    PS1: '$ ',
    WMESH_JOIN: cluster.seeds[0] as string,
    WMESH_SECRET_FILE: cluster.secretFile,
    W: `${process.execPath} ${wmeshBin}`,
  })
  delete env.NO_COLOR
  delete env.FORCE_COLOR
  execFileSync(
    'tmux',
    ['-L', socket, '-f', '/dev/null', 'new-session', '-d', '-s', session, '-x', String(WIDTH), '-y', '40'].concat([
      'bash',
      '--norc',
      '--noprofile',
    ]),
    { env },
  )
  await waitForScreen((t) => t.includes('$'), 'a shell prompt')
}, 30_000)

afterAll(async () => {
  try {
    tmux('kill-server')
  } catch {}
  await cluster?.stop()
})

describe('wmesh in a terminal (tmux)', () => {
  it('prints the nodes table in colour within 80 columns, and without colour under NO_COLOR', async () => {
    await clear()
    type('$W nodes')
    const { text } = await waitForScreen((t) => /^n2 /m.test(t) && t.trimEnd().endsWith('$'), 'the nodes table')
    const lines = text.split('\n').filter((l) => l.trim() !== '' && l.trim() !== '$' && !l.startsWith('$ '))
    expect(lines[0]).toMatch(/^NODE\s+ID\s+ADDRESS\s+STATUS\s+UPTIME\s+WORKERS\s+RTT\s+VERSION$/)
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(['n1', 'n2'])
    // Nothing wrapped: each row is one screen line no wider than the terminal.
    for (const line of lines) expect(line.trimEnd().length).toBeLessThanOrEqual(WIDTH)
    const coloured = screen(true)
    expect(coloured).toContain(`${ESC}[1mNODE`)
    expect(coloured).toContain(`${ESC}[32mup`)

    await clear()
    type('NO_COLOR=1 $W nodes')
    await waitForScreen((t) => /^n2 /m.test(t) && t.trimEnd().endsWith('$'), 'the plain nodes table')
    const plain = screen(true)
    const table = plain.split('\n').filter((l) => /^(NODE|n1|n2)\b/.test(stripVTControlCharacters(l)))
    expect(table).toHaveLength(3)
    for (const line of table) expect(line).not.toContain(ESC)
  })

  it('shows a spinner while it looks for the cluster, then erases it and prints one error line', async () => {
    await clear()
    const [closed] = await freePorts(1)
    type(`$W nodes --join 127.0.0.1:${closed} --connect-timeout 2500; echo "rc=$?"`)
    const spinning = await waitForScreen((t) => t.includes('finding cluster "wmesh"'), 'the spinner')
    expect(spinning.text).toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] finding cluster "wmesh" via 127\.0\.0\.1:\d+/)
    const { text } = await waitForScreen((t) => /^rc=\d+$/m.test(t), 'the exit code')
    expect(text).toMatch(/^rc=7$/m)
    expect(text).not.toContain('finding cluster')
    const output = text.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('$') && !l.startsWith('rc='))
    expect(output).toHaveLength(1)
    expect(output[0]).toMatch(/^wmesh: cannot reach any node of cluster "wmesh"/)
  })

  it('watch shows a killed node go down within the detection bound and come back; Ctrl-C exits 0', async () => {
    await clear()
    type('$W watch; echo "rc=$?"')
    const banner = await waitForScreen((t) => t.includes('watching "wmesh" through n1'), 'the watch banner')
    expect(banner.text).toContain('watching "wmesh" through n1 (2 nodes, 2 workers, 0 services); Ctrl-C to stop')

    const n2 = cluster.nodes[1]
    n2?.child.kill('SIGKILL')
    // The failure-detection bound is 5 s; a killed process closes its links, so it is far less.
    const down = await waitForScreen((t) => /node:down\s+n2 \(n2:/.test(t), 'node:down for n2', 5000)
    expect(down.ms).toBeLessThan(5000)
    expect(down.text).toMatch(/^\d\d:\d\d:\d\d\.\d{3}\s+worker:down\s+echo #0 on n2/m)

    const restarted = cluster.start(1)
    await restarted.waitFor((l) => String(l.msg).startsWith('node n2 running'), 'n2 running again')
    const up = await waitForScreen((t) => /node:up\s+n2 \(n2:.*\) at 127\.0\.0\.1:\d+/.test(t), 'node:up for n2')
    expect(up.text).toMatch(/worker:up\s+echo #0 on n2/)

    tmux('send-keys', '-t', session, 'C-c')
    // The terminal echoes ^C; then the shell runs the echo only because watch exited by itself.
    const { text } = await waitForScreen((t) => /rc=\d+$/m.test(t), 'watch to exit')
    expect(text).toMatch(/^\^Crc=0$/m)
    expect(text).not.toMatch(/Error|at .*\.js:\d+/)
  })
})
