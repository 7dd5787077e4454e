import { readFileSync } from 'node:fs'
import { Command, CommanderError } from 'commander'
import { registerInit } from './commands/init.js'
import { registerStart } from './commands/start.js'
import { ExitCode } from './exit-codes.js'
import { fail } from './fail.js'

export { type InitOptions, type InitResult, initProject } from './commands/init.js'
export { type StartOptions, startNode } from './commands/start.js'
export { FileExistsError, UsageError } from './errors.js'
export { ExitCode, exitCodeFor, exitCodes } from './exit-codes.js'
export { type FailOptions, fail, formatFailure } from './fail.js'

/** Version of the @wmesh/cli package, what `wmesh --version` prints. */
export const version: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version

/** Builds the `wmesh` command line. Usage errors print one line `wmesh: ...` on stderr. */
export function createProgram(): Command {
  const program = new Command('wmesh')
    .description('wmesh: a worker mesh for Node.js')
    .version(version, '-V, --version', 'print the version')
    .option('--verbose', 'print stack traces of errors')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      // Commander's "error: ..." and its suggestion line become our single line.
      outputError: (text, write) =>
        write(
          `wmesh: ${text
            .replace(/^error: /, '')
            .trim()
            .replace(/\s*\n\s*/g, ' ')}\n`,
        ),
    })
  // Subcommands copy the settings above, so they must come after them.
  registerInit(program)
  registerStart(program)
  return program
}

/**
 * Runs the `wmesh` command with `argv` (as in `process.argv`: node, script, args...).
 * Exits the process on failure with the code from `exitCodes`; long-running commands
 * (`start`) own the process until they exit.
 */
export async function main(argv: readonly string[] = process.argv): Promise<void> {
  const program = createProgram()
  try {
    await program.parseAsync([...argv])
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander has printed the message (or the help, or the version) already.
      process.exit(error.exitCode === 0 ? ExitCode.ok : ExitCode.usage)
    }
    fail(error, { verbose: program.opts().verbose === true })
  }
}
