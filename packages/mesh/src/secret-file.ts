import { readFile, stat } from 'node:fs/promises'
import { ConfigError } from './config.js'

/** Shortest cluster secret nodes accept. */
export const MIN_SECRET_LENGTH = 16

/**
 * The cluster secret in `path` (surrounding whitespace trimmed), as nodes and clients read
 * it. A file that cannot be read, or holds less than MIN_SECRET_LENGTH characters, is a
 * `ConfigError` naming it: a client holding a secret no node accepts could never link.
 */
export async function readSecretFile(path: string): Promise<Buffer> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new ConfigError(`secretFile ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`)
  }
  const secret = Buffer.from(text.trim(), 'utf8')
  if (secret.length < MIN_SECRET_LENGTH) {
    throw new ConfigError(`secretFile ${path}: the secret must be at least ${MIN_SECRET_LENGTH} characters`)
  }
  return secret
}

/**
 * The file's mode when every user of the host may read it (a leak), else undefined.
 * Group-readable is how Kubernetes mounts secrets (0440), so that passes.
 */
export async function worldReadableMode(path: string): Promise<string | undefined> {
  const { mode } = await stat(path)
  return (mode & 0o007) !== 0 ? `0${(mode & 0o777).toString(8)}` : undefined
}
