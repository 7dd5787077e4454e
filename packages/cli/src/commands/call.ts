import { readFileSync } from 'node:fs'
import { type CallOutcome, NoSuchMethodError, NoSuchWorkerError, RemoteError } from '@wmesh/core'
import type { MeshClient } from '@wmesh/mesh'
import { type Command, Option } from 'commander'
import { exitWhenDone, isVerbose } from '../action.js'
import { addClusterOptions, type ClusterOptions, milliseconds } from '../cluster-options.js'
import { findNode, withCluster } from '../connect.js'
import { UsageError } from '../errors.js'
import { exitCodeFor } from '../exit-codes.js'
import { parseJsonArgument, toJson } from '../format.js'
import { print, printJson } from '../output.js'
import { Painter, safeText } from '../style.js'
import { renderTable } from '../table.js'

interface CallCommandOptions extends ClusterOptions {
  node?: string
  key?: string
  timeout?: number
}

/** The JSON argument: text, `-` for stdin, or none. */
function readArgument(text: string | undefined): unknown {
  if (text === undefined) return undefined
  if (text === '-') return parseJsonArgument(readFileSync(0, 'utf8').trim(), 'the argument on stdin')
  return parseJsonArgument(text, `the argument ${JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text)}`)
}

/** A remote error's one line names the call, the remote class and code: `echo.fail threw CustomError [E_CUSTOM]: boom`. */
function describeRemote(error: unknown, what: string): unknown {
  if (!(error instanceof RemoteError)) return error
  // A remote error that crossed a link without its original class arrives as RemoteError/ERR_REMOTE.
  const name = error.remoteName && error.remoteName !== 'RemoteError' ? error.remoteName : 'an error'
  const code = ` [${error.remoteCode ?? error.code}]`
  const described = new RemoteError(
    `${what} threw ${name}${code}: ${error.message}`,
    error.remoteCode,
    error.remoteName,
    error.remoteStack,
  )
  described.cause = error
  return described
}

/** One outcome of `call --node all` as `--json` prints it. */
type OutcomeRow =
  | { node: string; ok: true; value: unknown }
  | { node: string; ok: false; error: { code: string | null; message: string; remoteCode?: string | null } }

function outcomeRow(outcome: CallOutcome, what: string): OutcomeRow {
  if (outcome.ok) return { node: outcome.node, ok: true, value: outcome.value }
  const error = describeRemote(outcome.error, what) as Error & { code?: string }
  return {
    node: outcome.node,
    ok: false,
    error: {
      code: error.code ?? null,
      message: error.message,
      ...(error instanceof RemoteError ? { remoteCode: error.remoteCode ?? null } : {}),
    },
  }
}

async function runCall(
  client: MeshClient,
  worker: string,
  method: string,
  arg: unknown,
  options: CallCommandOptions,
): Promise<number> {
  const what = `${worker}.${method}`
  const timeout = options.timeout
  if (options.node === 'all') {
    const outcomes = (await client.worker(worker, { key: options.key, node: 'all' }).call(method, arg, {
      timeout,
    })) as CallOutcome[]
    const rows = outcomes.map((o) => outcomeRow(o, what)).sort((a, b) => a.node.localeCompare(b.node))
    if (options.json) printJson(rows)
    else {
      const p = new Painter()
      print(
        renderTable(
          [
            { header: p.paint('bold', 'NODE'), shrink: true },
            { header: p.paint('bold', 'RESULT'), shrink: true },
          ],
          rows.map((r) => [
            r.node,
            r.ok ? toJson(r.value) : p.paint('red', `${r.error.message}${r.error.code ? ` (${r.error.code})` : ''}`),
          ]),
        ),
      )
    }
    // Every node answered: 0. Otherwise the exit code of the first failure, by node name.
    const failed = outcomes
      .filter((o): o is Extract<CallOutcome, { ok: false }> => !o.ok)
      .sort((a, b) => a.node.localeCompare(b.node))[0]
    return failed ? exitCodeFor(failed.error) : 0
  }
  const node = options.node === undefined ? undefined : (await findNode(client, options.node)).id
  try {
    const value = await client.worker(worker, { key: options.key, node }).call(method, arg, { timeout })
    print(toJson(value, 2))
    return 0
  } catch (error) {
    throw describeRemote(error, what)
  }
}

/**
 * Checks that a running instance has the method before a cast: a cast gets no answer, so
 * this is the only way to tell a typo from success.
 */
async function checkCastTarget(client: MeshClient, worker: string, method: string, key?: string, node?: string) {
  const running = (await client.workers()).filter(
    (w) =>
      w.name === worker &&
      w.state === 'running' &&
      (key === undefined ? w.key === undefined : w.key === key) &&
      (node === undefined || w.node === node),
  )
  const where = `${key === undefined ? '' : ` with key "${key}"`}${node === undefined ? '' : ` on ${node}`}`
  if (running.length === 0) throw new NoSuchWorkerError(`no running instance of ${worker}${where} in the cluster`)
  if (!running.some((w) => w.methods.includes(method))) {
    throw new NoSuchMethodError(`${worker} has no public method "${method}"`)
  }
}

function callOptions(command: Command): Command {
  return addClusterOptions(
    command
      .argument('<worker>', 'worker name')
      .argument('<method>', 'public method of the worker')
      .argument('[json-arg]', 'argument as JSON (quote strings: \'"text"\'); - reads it from stdin')
      .option('--key <key>', 'the instance started with this key (new-worker --key)'),
  )
}

/** Adds `wmesh call` and `wmesh cast`. */
export function registerCall(program: Command): void {
  callOptions(
    program
      .command('call')
      .description('call a worker method anywhere in the cluster and print the result as JSON')
      .option('--node <node>', 'run it on this node (name or id), or on every node that has the worker: all')
      .addOption(
        new Option('--timeout <ms>', 'give up waiting for the answer after this long').argParser(milliseconds),
      ),
  ).action(
    exitWhenDone(
      async (
        worker: string,
        method: string,
        argText: string | undefined,
        options: CallCommandOptions,
        command: Command,
      ) => {
        const arg = readArgument(argText)
        return withCluster({ ...options, verbose: isVerbose(command) }, ({ client }) =>
          runCall(client, worker, method, arg, options),
        )
      },
    ),
  )

  callOptions(
    program
      .command('cast')
      .description('send a call without waiting for it to run (fire and forget)')
      .option('--node <node>', 'send it to this node (name or id)'),
  ).action(
    exitWhenDone(
      async (
        worker: string,
        method: string,
        argText: string | undefined,
        options: CallCommandOptions,
        command: Command,
      ) => {
        if (options.node === 'all') throw new UsageError('cast takes one node, not all; use call --node all')
        const arg = readArgument(argText)
        await withCluster({ ...options, verbose: isVerbose(command) }, async ({ client }) => {
          const node = options.node === undefined ? undefined : await findNode(client, options.node)
          await checkCastTarget(client, worker, method, options.key, node?.name)
          await client.worker(worker, { key: options.key, node: node?.id }).cast(method, arg)
          if (options.json) printJson({ sent: true, worker, method })
          else print(safeText(`sent ${worker}.${method}${node ? ` to ${node.name}` : ''}`))
        })
      },
    ),
  )
}
