import { Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { createNodeLogger, MeshNode, type NodeConfigInput } from '@wmesh/mesh'
import { pino } from 'pino'

export const fixtures = fileURLToPath(new URL('./fixtures/workers/', import.meta.url))

/** Log lines of a node (and its worker threads), parsed, for assertions. */
export class LogCapture extends Writable {
  readonly lines: Array<Record<string, unknown>> = []
  #partial = ''
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    const text = this.#partial + chunk.toString()
    const parts = text.split('\n')
    this.#partial = parts.pop() ?? ''
    for (const line of parts) if (line.trim()) this.lines.push(JSON.parse(line) as Record<string, unknown>)
    done()
  }
}

/** Starts a node in this process with its logs captured. */
export async function startNode(config: NodeConfigInput): Promise<{ node: MeshNode; logs: LogCapture }> {
  const logs = new LogCapture()
  const logger = createNodeLogger({ level: config.logLevel ?? 'info', pretty: false, destination: logs })
  const node = new MeshNode({ name: 'test', ...config }, { logger })
  await node.start()
  return { node, logs }
}

export const silent = pino({ level: 'silent' })
