import { readFileSync } from 'node:fs'
import { Command, CommanderError } from 'commander'
import { registerAskResult } from './commands/ask-result.js'
import { registerCall } from './commands/call.js'
import { registerInit } from './commands/init.js'
import { registerKeyedWorkers } from './commands/keyed-workers.js'
import { registerNodes } from './commands/nodes.js'
import { registerPing } from './commands/ping.js'
import { registerServices } from './commands/services.js'
import { registerStart } from './commands/start.js'
import { registerStop } from './commands/stop.js'
import { registerWatch } from './commands/watch.js'
import { registerWorkers } from './commands/workers.js'
import { ExitCode } from './exit-codes.js'
import { fail } from './fail.js'

export { type InitOptions, type InitResult, initProject } from './commands/init.js'
export { type StartOptions, startNode } from './commands/start.js'
export { FileExistsError, NoResultError, UsageError } from './errors.js'
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
    // The command list shows names only (`wmesh help <command>` has the rest), so it fits 80 columns.
    .configureHelp({ subcommandTerm: (command) => command.name() })
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
  registerNodes(program)
  registerWorkers(program)
  registerServices(program)
  registerCall(program)
  registerKeyedWorkers(program)
  registerAskResult(program)
  registerWatch(program)
  registerPing(program)
  registerStop(program)
  program.addHelpText(
    'after',
    [
      '',
      'Commands that talk to a cluster find it by --join, $WMESH_JOIN or mDNS, with the',
      'secret from --secret-file, $WMESH_SECRET_FILE, or the wmesh.config.json and',
      'wmesh.secret that `wmesh init` wrote in the current directory.',
      '',
      'Exit codes: 0 ok, 1 unexpected, 2 usage, 3 config, 4 no such worker, method,',
      'service or result, 5 remote error, 6 timeout, 7 node down or cluster not found,',
      '8 wrong secret, 9 wrong cluster.',
    ].join('\n'),
  )
  return program
}

/**
 * Runs the `wmesh` command with `argv` (as in `process.argv`: node, script, args...).
 * Exits the process on failure with the code from `exitCodes`; long-running commands
 * (`start`) own the process until they exit.
 */
export async function main(argv: readonly string[] = process.argv): Promise<void> {
  const program = createProgram()
  // A reader that went away (`wmesh watch | head`) is not an error.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(ExitCode.ok)
    fail(error)
  })
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
