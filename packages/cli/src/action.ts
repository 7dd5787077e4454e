import type { Command } from 'commander'

/**
 * Wraps a command's action so the process exits with the code it returns (0 if none) as
 * soon as it is done: nothing a client leaves behind (a discovery socket, a redial
 * timer) can keep a finished command alive. Errors propagate to `main`, which prints them.
 * The last argument commander passes an action is the command itself.
 */
export function exitWhenDone<A extends unknown[]>(
  action: (...args: A) => Promise<unknown>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    const code = await action(...args)
    process.exit(typeof code === 'number' ? code : 0)
  }
}

/** True when `--verbose` was given (before or after the command name). */
export function isVerbose(command: Command): boolean {
  return command.optsWithGlobals().verbose === true
}
