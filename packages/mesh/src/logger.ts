import { createRequire } from 'node:module'
import { type Logger, pino } from 'pino'

const require = createRequire(import.meta.url)

export interface NodeLoggerOptions {
  level?: string
  /** Human-readable lines (default: when stdout is a terminal). Otherwise JSON lines. */
  pretty?: boolean
  /** Where lines go (default stdout). */
  destination?: NodeJS.WritableStream
}

const sinks = new WeakMap<Logger, NodeJS.WritableStream>()

/**
 * The node's logger: JSON lines, or pretty ones on a terminal. Worker threads write JSON
 * lines that the node forwards to the same sink, so both modes cover every line.
 */
export function createNodeLogger(options: NodeLoggerOptions = {}): Logger {
  const destination = options.destination ?? process.stdout
  const usePretty = options.pretty ?? (destination === process.stdout && process.stdout.isTTY === true)
  // pino-pretty only loads for a terminal: a service's node saves its ~8 MB.
  const pretty = usePretty ? (require('pino-pretty') as typeof import('pino-pretty')) : undefined
  const sink: NodeJS.WritableStream = pretty
    ? pretty({
        destination: destination as NodeJS.WritableStream & { fd?: number },
        colorize: !process.env.NO_COLOR,
        sync: true,
        singleLine: true,
        ignore: 'pid,hostname',
        translateTime: 'SYS:HH:MM:ss.l',
      })
    : destination
  const logger = pino({ level: options.level ?? 'info' }, sink)
  sinks.set(logger, sink)
  return logger
}

/** Where worker threads' JSON log lines should be written for this logger. */
export function logSinkOf(logger: Logger): NodeJS.WritableStream {
  return sinks.get(logger) ?? process.stdout
}
