/**
 * The full command-line parser: yargs, with help, version, suggestions and strict checks. Loaded
 * only for a line the quick parser (quickArgs.ts) does not take on, or for help.
 */
import yargs from 'yargs';
import type { Argv, CommandModule } from 'yargs';
import { GLOBAL_OPTIONS } from './globalOptions.js';

/**
 * yargs renders the whole help text after every command it runs, to have it ready should the
 * command fail later: 40-80 ms of string-width arithmetic on every start. Our fail handler never
 * prints help, so the text is only ever needed when asked for, and built then.
 */
function skipHelpCache(cli: unknown): void {
  const usage = (cli as { getInternalMethods?: () => { getUsageInstance?: () => { cacheHelpMessage?: () => void } } }).getInternalMethods?.().getUsageInstance?.();
  if (usage && typeof usage.cacheHelpMessage === 'function') usage.cacheHelpMessage = () => undefined;
}

export interface YargsOutcome {
  /** An error a command (or yargs) threw. */
  failure?: unknown;
  /** A usage message of yargs' own (unknown option, missing command). */
  usageFailure?: string;
  /** What yargs would print: help or the version. */
  printed: string;
}

/** The ckpt command line as yargs sees it, with `commands` registered. */
export function yargsCli(argv: string[], version: string, columns: number | undefined, commands: CommandModule<object, never>[], fail: (msg: string, err: unknown) => void): Argv {
  const cli = yargs(argv)
    .scriptName('ckpt')
    .version(version)
    .usage('ckpt: version control for machine-learning checkpoints\n\nUsage: $0 <command> [options]');
  for (const [name, o] of Object.entries(GLOBAL_OPTIONS)) cli.option(name, o);
  cli
    .strict()
    .demandCommand(1, 'name a command; see ckpt --help')
    .recommendCommands()
    .wrap(Math.min(100, columns ?? 100))
    .exitProcess(false)
    .fail(fail);
  for (const c of commands) cli.command(c);
  skipHelpCache(cli);
  return cli;
}

/** Parses and runs `argv` with yargs; `context` reaches every command's argv. */
export async function runYargs(argv: string[], version: string, columns: number | undefined, commands: CommandModule<object, never>[], context: object): Promise<YargsOutcome> {
  const out: YargsOutcome = { printed: '' };
  const cli = yargsCli(argv, version, columns, commands, (msg, err) => {
    if (err) out.failure = err;
    else out.usageFailure = msg;
  });
  // With a parse callback yargs hands over what it would print (help, version) instead of
  // writing it to the console.
  try {
    await cli.parseAsync(argv, context, (_err, _args, text) => {
      out.printed = text ?? '';
    });
  } catch (e) {
    out.failure ??= e;
  }
  return out;
}
