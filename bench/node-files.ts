/** What a `wmesh start` of the benchmark needs: the CLI, a cluster secret, config files. */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The `wmesh` command as the repository builds it. */
export const wmeshBin = fileURLToPath(new URL('../packages/cli/bin/wmesh.js', import.meta.url))

/** A directory with a fresh cluster secret, removed by `remove()` or, failing that, when the process exits. */
export class SecretDir {
  readonly path = mkdtempSync(join(tmpdir(), 'wmesh-bench-'))
  readonly secretFile = join(this.path, 'secret')
  readonly #removeOnExit = () => this.remove()

  constructor() {
    writeFileSync(this.secretFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 })
    process.once('exit', this.#removeOnExit)
  }

  /** Writes a node config file and returns its path. */
  writeConfig(name: string, config: object): string {
    const file = join(this.path, `${name}.json`)
    writeFileSync(file, JSON.stringify({ name, mdns: false, secretFile: this.secretFile, ...config }))
    return file
  }

  remove(): void {
    process.off('exit', this.#removeOnExit)
    rmSync(this.path, { recursive: true, force: true })
  }
}
