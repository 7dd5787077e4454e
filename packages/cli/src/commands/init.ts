import { randomBytes } from 'node:crypto'
import { mkdir, open, stat } from 'node:fs/promises'
import { join, relative, resolve } from 'node:path'
import type { Command } from 'commander'
import { FileExistsError } from '../errors.js'

/** Options of `initProject`. */
export interface InitOptions {
  /** Directory to set up (created if needed), relative to `cwd`. */
  dir: string
  /** Overwrite files that exist. */
  force?: boolean
  cwd?: string
}

/** What `initProject` wrote. */
export interface InitResult {
  dir: string
  configFile: string
  secretFile: string
  workerFile: string
}

const config = {
  cluster: 'wmesh',
  secretFile: 'wmesh.secret',
  workersDir: 'workers',
  logLevel: 'info',
}

const helloWorker = `import { Worker } from '@wmesh/core'

/**
 * An example worker. Each .js/.mjs/.ts file in workers/ is loaded as a worker; its
 * public methods are what other workers and clients call.
 */
export default class HelloWorker extends Worker {
  static workerName = 'hello_worker'

  create() {
    this.log.info('hello worker ready')
    this.addPeriodicTimer(10_000, () => this.log.info('hello worker still here'))
  }

  hello(name) {
    return \`hello, \${name ?? 'world'}\`
  }
}
`

/**
 * Sets up `dir` for `wmesh start`: a config file, a random cluster secret readable only
 * by its owner, and an example worker. Refuses to overwrite anything unless `force`.
 *
 * @throws FileExistsError naming the files that exist.
 */
export async function initProject(options: InitOptions): Promise<InitResult> {
  const dir = resolve(options.cwd ?? process.cwd(), options.dir)
  const result: InitResult = {
    dir,
    configFile: join(dir, 'wmesh.config.json'),
    secretFile: join(dir, config.secretFile),
    workerFile: join(dir, config.workersDir, 'hello-worker.mjs'),
  }
  const files = [result.configFile, result.secretFile, result.workerFile]
  if (!options.force) {
    const existing = (await Promise.all(files.map(async (f) => ((await exists(f)) ? f : undefined)))).filter(
      (f) => f !== undefined,
    )
    if (existing.length > 0) {
      throw new FileExistsError(`refusing to overwrite ${existing.join(', ')}; use --force to replace`)
    }
  }
  await mkdir(join(dir, config.workersDir), { recursive: true })
  // 'wx' fails if the file appeared since the check above, so nothing is overwritten by a race.
  const flags = options.force ? 'w' : 'wx'
  await writeSecret(result.secretFile, flags)
  await writeText(result.configFile, `${JSON.stringify(config, null, 2)}\n`, flags)
  await writeText(result.workerFile, helloWorker, flags)
  return result
}

/** Writes a fresh 32-byte hex secret to a file that only its owner can read. */
async function writeSecret(path: string, flags: string): Promise<void> {
  const file = await openExclusive(path, flags, 0o600)
  try {
    // The open mode is masked by the umask and ignored for an existing file: set it
    // explicitly, and check before the secret is written.
    await file.chmod(0o600)
    const mode = (await file.stat()).mode & 0o777
    if (mode !== 0o600) {
      throw new Error(`could not restrict ${path} to mode 0600 (it is 0${mode.toString(8)}); no secret written`)
    }
    await file.writeFile(`${randomBytes(32).toString('hex')}\n`)
  } finally {
    await file.close()
  }
}

async function writeText(path: string, text: string, flags: string): Promise<void> {
  const file = await openExclusive(path, flags, 0o644)
  try {
    await file.writeFile(text)
  } finally {
    await file.close()
  }
}

async function openExclusive(path: string, flags: string, mode: number) {
  try {
    return await open(path, flags, mode)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new FileExistsError(`refusing to overwrite ${path}; use --force to replace`)
    }
    throw error
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return false
      throw error
    },
  )
}

/** Adds `wmesh init [dir]` to `program`. */
export function registerInit(program: Command): void {
  program
    .command('init')
    .description('set up a directory: wmesh.config.json, a cluster secret and an example worker')
    .argument('[dir]', 'directory to set up (created if needed)', '.')
    .option('-f, --force', 'overwrite existing files')
    .action(async (dir: string, options: { force?: boolean }) => {
      const result = await initProject({ dir, force: options.force === true })
      console.log(`created ${result.configFile}`)
      console.log(`created ${result.secretFile} (mode 0600; the same secret goes on every node of the cluster)`)
      console.log(`created ${result.workerFile}`)
      const where = relative(process.cwd(), result.dir)
      console.log(`next: ${where === '' ? '' : `cd ${quote(where)} && `}wmesh start`)
    })
}

/** Quotes a path for a POSIX shell when it needs it. */
function quote(path: string): string {
  return /^[\w./-]+$/.test(path) ? path : `'${path.replaceAll("'", `'\\''`)}'`
}
