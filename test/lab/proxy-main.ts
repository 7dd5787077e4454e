/**
 * The lab proxy as a process, for `startProxyIn` (run with `ip netns exec <ns> node --import
 * tsx proxy-main.ts '<ProxyInit as JSON>'`). Prints `{ event: 'listening', host, port, seed }`,
 * then answers one JSON line `{ id, ok, value | error }` per command line `{ id, op, arg }`,
 * where `op` is a function of `ProxyControl`. Closing stdin closes the proxy and exits.
 */
import { createInterface } from 'node:readline'
import { type CorruptOptions, type ProxyInit, startProxy } from './proxy.js'

const proxy = await startProxy(JSON.parse(process.argv[2] ?? '{}') as ProxyInit)
const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`)
print({ event: 'listening', host: proxy.host, port: proxy.port, seed: proxy.seed })

const ops: Record<string, (arg: unknown) => Promise<unknown>> = {
  delay: (ms) => proxy.delay(ms as number),
  stall: () => proxy.stall(),
  stallOpen: () => proxy.stallOpen(),
  resume: () => proxy.resume(),
  corrupt: (options) => proxy.corrupt(options as CorruptOptions),
  heal: () => proxy.heal(),
  closeConnections: () => proxy.closeConnections(),
  reset: () => proxy.reset(),
  stats: () => proxy.stats(),
}

createInterface({ input: process.stdin }).on('line', async (line) => {
  const { id, op, arg } = JSON.parse(line) as { id: number; op: string; arg?: unknown }
  try {
    const run = ops[op]
    if (!run) throw new Error(`unknown op ${op}`)
    print({ id, ok: true, value: (await run(arg)) ?? null })
  } catch (error) {
    print({ id, ok: false, error: (error as Error).message })
  }
})
process.stdin.on('end', () => {
  void proxy.close().then(() => process.exit(0))
})
