/**
 * One Moleculer broker, as its own process, for the peer baseline: TCP transporter with
 * static 127.0.0.1 urls and UDP discovery off (no multicast or broadcast), logger off.
 *   echo:   serves `echo.echo`, which returns its params
 *   caller: serves `driver.run`, closed loops of `ctx.call('echo.echo')` to the other broker;
 *           each IPC message `{ inflight, warmupMs, windowMs }` runs it once and is answered
 *           with the measured round trips
 * usage: broker.ts <caller|echo> <callerPort> <echoPort>; sends `{ ready: true, version }` over IPC
 * once it can serve (the caller: once it sees `echo`), exits when the IPC channel closes.
 */
import { type Context, MOLECULER_VERSION, ServiceBroker } from 'moleculer'
import { type ClosedLoopInit, closedLoop } from '../fixtures/closed-loop.mjs'

const [role, callerPort, echoPort] = process.argv.slice(2)
const PAYLOAD = { value: 'x'.repeat(16) }
const self =
  role === 'caller' ? { id: 'bench-caller', port: Number(callerPort) } : { id: 'bench-echo', port: Number(echoPort) }

const broker = new ServiceBroker({
  nodeID: self.id,
  namespace: `wmesh-bench-${process.ppid}`,
  logger: false,
  transporter: {
    type: 'TCP',
    options: {
      udpDiscovery: false,
      useHostname: false,
      port: self.port,
      urls: `127.0.0.1:${callerPort}/bench-caller,127.0.0.1:${echoPort}/bench-echo`,
    },
  },
})

if (role === 'caller') {
  broker.createService({
    name: 'driver',
    actions: {
      run(ctx: Context<ClosedLoopInit>) {
        return closedLoop(ctx.params, () => ctx.call('echo.echo', PAYLOAD))
      },
    },
  })
} else {
  broker.createService({
    name: 'echo',
    actions: {
      echo(ctx: Context) {
        return ctx.params
      },
    },
  })
}

await broker.start()
if (role === 'caller') {
  await broker.waitForServices(['echo'], 30_000)
  process.on('message', (load: ClosedLoopInit) => {
    broker.call('driver.run', load).then(
      (result) => process.send?.(result),
      (error: unknown) => process.send?.({ error: String(error) }),
    )
  })
}
process.send?.({ ready: true, version: MOLECULER_VERSION })
process.on('disconnect', () => {
  void broker.stop().finally(() => process.exit(0))
})
