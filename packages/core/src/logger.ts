import { type Logger, type LoggerOptions, pino } from 'pino'

/**
 * The logger used when none is injected: JSON lines on stdout at `WMESH_LOG_LEVEL`
 * (default `info`). Nodes and the CLI inject their own (pretty on a terminal).
 */
export function createDefaultLogger(options: LoggerOptions = {}): Logger {
  return pino({ level: process.env.WMESH_LOG_LEVEL ?? 'info', ...options })
}
