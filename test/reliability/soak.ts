/**
 * `npm run soak -- --minutes N`: runs reliability scenarios 1-4 and the one-link cut again
 * and again (each in a fresh vitest run, so every round gets new namespaces, a new
 * partition seed and new incarnations) until N minutes have passed, then prints how many
 * rounds of each passed and failed, with the figures line of every failure. Bounded: no
 * scenario starts after the deadline (the last one may run past it by its own length, at
 * most ~1.5 min), and at most --max-rounds rounds run. Needs root (network namespaces).
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const scenarios = [
  { name: 'crash-restart', file: 'test/reliability/crash-restart.test.ts' },
  { name: 'pause', file: 'test/reliability/pause.test.ts' },
  { name: 'partition-heal', file: 'test/reliability/partition-heal.test.ts' },
  { name: 'packet-loss', file: 'test/reliability/packet-loss.test.ts' },
  { name: 'one-link-cut', file: 'test/reliability/one-link-cut.test.ts' },
]

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    'max-rounds': { type: 'string', default: '1000' },
    'loss-seconds': { type: 'string', default: '20' },
  },
})
const minutes = Number(values.minutes)
const maxRounds = Number(values['max-rounds'])
if (!(minutes > 0 && minutes <= 24 * 60) || !(maxRounds > 0)) {
  console.error('soak: --minutes must be 1-1440 and --max-rounds positive')
  process.exit(2)
}
const root = fileURLToPath(new URL('../../', import.meta.url))
const vitest = fileURLToPath(new URL('../../node_modules/vitest/vitest.mjs', import.meta.url))
const deadline = Date.now() + minutes * 60_000
const counts = new Map(scenarios.map((s) => [s.name, { passed: 0, failed: 0 }]))
const failures: string[] = []
let current: ReturnType<typeof spawn> | undefined
let interrupted = false
process.on('SIGINT', () => {
  interrupted = true
  current?.kill('SIGINT')
})

/** Runs one scenario file; resolves with its exit code and its figure lines. */
function runOnce(file: string): Promise<{ code: number | null; figures: string[]; tail: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [vitest, 'run', file], {
      cwd: root,
      env: { ...process.env, WMESH_PARTITION_SEED: '', WMESH_LOSS_SECONDS: values['loss-seconds'], NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    current = child
    let out = ''
    child.stdout.on('data', (chunk) => {
      out += chunk
    })
    child.stderr.on('data', (chunk) => {
      out += chunk
    })
    child.on('exit', (code) => {
      current = undefined
      const figures = out.split('\n').filter((l) => l.startsWith('[scenario'))
      resolve({ code, figures, tail: out.slice(-3000) })
    })
  })
}

let round = 0
const started = Date.now()
while (Date.now() < deadline && round < maxRounds && !interrupted) {
  round++
  for (const scenario of scenarios) {
    if (Date.now() >= deadline || interrupted) break
    const { code, figures, tail } = await runOnce(scenario.file)
    const count = counts.get(scenario.name) as { passed: number; failed: number }
    const elapsed = ((Date.now() - started) / 60_000).toFixed(1)
    if (code === 0) count.passed++
    else {
      count.failed++
      failures.push(`round ${round} ${scenario.name}:\n${figures.join('\n')}\n${tail}`)
    }
    console.log(`soak ${elapsed} min, round ${round}: ${scenario.name} ${code === 0 ? 'passed' : `FAILED (${code})`}`)
    for (const line of figures) console.log(`  ${line}`)
  }
}

console.log(`\nsoak: ${round} rounds in ${((Date.now() - started) / 60_000).toFixed(1)} min`)
for (const [name, { passed, failed }] of counts) console.log(`  ${name.padEnd(16)} passed ${passed}  failed ${failed}`)
for (const failure of failures) console.log(`\n--- ${failure}`)
process.exit(failures.length > 0 || interrupted ? 1 : 0)
