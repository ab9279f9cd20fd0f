// Entry of the CLI: the command table handed to yargs; each handler's error is rendered once, here.
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { readConfig } from '../core/config.js';
import { setFaultPoints } from '../core/fault.js';
import { exitCodeFor, renderError } from './errors.js';
import type { Command, Context } from './spec.js';
import { COMMANDS } from './table.js';

/** Tell yargs a command's positionals and options, in the table's order. */
function declare(y: Argv, cmd: Command): Argv {
  let b = y;
  for (const [name, spec] of Object.entries(cmd.positionals)) b = b.positional(name, spec.declared);
  for (const [name, spec] of Object.entries(cmd.options)) b = b.option(name, spec.declared);
  return b;
}

/** The words after `--` (yargs' populate-- puts them apart). */
function restOf(parsed: Readonly<Record<string, unknown>>): string[] {
  const rest = parsed['--'];
  return Array.isArray(rest) ? rest.map(String) : [];
}

/** A usage error yargs reported (already on stderr): ends the parse, so no handler runs. */
class UsageFailed extends Error {}

export async function main(argv: string[]): Promise<number> {
  // the one read of the environment: handlers and the library get its values as parameters
  const config = readConfig(process.env);
  setFaultPoints(config.fault);
  let code = 0;
  const fail = (err: unknown) => {
    process.stderr.write(`${renderError(err)}\n`);
    code = exitCodeFor(err);
  };
  let y = yargs(hideBin(['node', 'ost', ...argv]))
    .scriptName('ost')
    .parserConfiguration({ 'populate--': true })
    .usage('$0 <command> [options]\n\nBuild layered OST VM images and run OST environments from them.');
  for (const cmd of COMMANDS) {
    y = y.command(
      cmd.usage,
      cmd.describe,
      (b) => declare(b, cmd),
      async (parsed) => {
        const ctx: Context = { config, rest: restOf(parsed) };
        try {
          const exit = await cmd.run(parsed, ctx);
          if (typeof exit === 'number') code = exit;
        } catch (err) {
          fail(err);
        }
      },
    );
  }
  try {
    await y
      .demandCommand(1, 'name a command; ost --help lists them')
      .strict()
      .help()
      .version()
      .wrap(Math.min(110, process.stdout.columns || 110))
      .fail((msg, err) => {
        // yargs' own usage errors, and a coerce's (a bad flag value), come as YError: exit 2 with the message
        if (err && err.name !== 'YError') throw err;
        process.stderr.write(`error: ${msg}\nrun ost --help for usage\n`);
        // thrown: when fail returns, yargs runs the command's handler anyway on what it just refused
        throw new UsageFailed();
      })
      .parseAsync();
  } catch (err) {
    if (!(err instanceof UsageFailed)) throw err;
    code = 2;
  }
  return code;
}
