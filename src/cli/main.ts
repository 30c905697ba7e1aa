/**
 * The `ckpt` command line: yargs commands, one file each. Errors become one clear line on
 * stderr (or a JSON error with --json) and an exit code chosen by the error's code.
 */
import yargs from 'yargs';
import { isCkptError } from '../core/errors.js';
import { branchCommand, tagCommand } from './branchCommand.js';
import { checkoutCommand } from './checkoutCommand.js';
import { commitCommand } from './commitCommand.js';
import { diffCommand } from './diffCommand.js';
import { duCommand } from './duCommand.js';
import { fsckCommand } from './fsckCommand.js';
import { gcCommand } from './gcCommand.js';
import { EXIT_CODES, EXIT_INTERNAL } from './exitCodes.js';
import { initCommand } from './initCommand.js';
import { logCommand } from './logCommand.js';
import { pruneCommand } from './pruneCommand.js';
import { restoreCodeCommand } from './restoreCodeCommand.js';
import { showCommand } from './showCommand.js';
import { statusCommand } from './statusCommand.js';
import { remoteCommand } from './remoteCommand.js';
import { pushCommand } from './pushCommand.js';
import { fetchCommand } from './fetchCommand.js';
import { pullCommand } from './pullCommand.js';
import { cloneCommand } from './cloneCommand.js';
import { serveCommand } from './serveCommand.js';
import type { CommandModule } from 'yargs';

const commands: CommandModule<object, never>[] = [
  initCommand,
  commitCommand,
  logCommand,
  showCommand,
  diffCommand,
  checkoutCommand,
  statusCommand,
  branchCommand,
  tagCommand,
  pruneCommand,
  gcCommand,
  fsckCommand,
  duCommand,
  restoreCodeCommand,
  remoteCommand,
  pushCommand,
  fetchCommand,
  pullCommand,
  cloneCommand,
  serveCommand,
] as never;

function report(err: unknown, json: boolean): number {
  if (isCkptError(err)) {
    if (json) process.stdout.write(`${JSON.stringify({ error: err.toJSON() }, null, 2)}\n`);
    process.stderr.write(`ckpt: error: ${err.message}\n`);
    return EXIT_CODES[err.code] ?? EXIT_INTERNAL;
  }
  const e = err as Error;
  if (json) process.stdout.write(`${JSON.stringify({ error: { code: 'E_INTERNAL', message: e?.message ?? String(err) } }, null, 2)}\n`);
  process.stderr.write(`ckpt: internal error: ${e?.stack ?? String(err)}\n`);
  return EXIT_INTERNAL;
}

/**
 * The AWS SDK warns on every S3 run that its later releases will need Node 22: noise for a user
 * of this release. Other warnings still reach Node's own printer.
 */
function muteSdkNodeWarning(): void {
  const printers = process.listeners('warning');
  process.removeAllListeners('warning');
  process.on('warning', (w) => {
    if (/AWS SDK for JavaScript/.test(w.message) && /node >=\d+/.test(w.message)) return;
    for (const p of printers) p(w);
  });
}

export async function main(argv: string[]): Promise<number> {
  muteSdkNodeWarning();
  const json = argv.includes('--json');
  let failure: unknown;
  let usageFailure: string | undefined;
  const cli = yargs(argv)
    .scriptName('ckpt')
    .usage('ckpt: version control for machine-learning checkpoints\n\nUsage: $0 <command> [options]')
    .option('json', { type: 'boolean', describe: 'machine-readable output on stdout', global: true })
    .option('quiet', { alias: 'q', type: 'boolean', describe: 'no progress or notes on stderr', global: true })
    .option('cwd', { type: 'string', describe: 'run as if started in this folder', global: true, hidden: true })
    .strict()
    .demandCommand(1, 'name a command; see ckpt --help')
    .recommendCommands()
    .wrap(Math.min(100, process.stdout.columns ?? 100))
    .exitProcess(false)
    .fail((msg, err) => {
      if (err) failure = err;
      else usageFailure = msg;
    });
  for (const c of commands) cli.command(c);
  try {
    await cli.parseAsync();
  } catch (e) {
    failure ??= e;
  }
  if (failure) return report(failure, json);
  if (usageFailure) {
    process.stderr.write(`ckpt: ${usageFailure}\n`);
    return EXIT_CODES.E_USAGE;
  }
  // A command may end with an outcome that is not an error (diff --exit-code found changes).
  return typeof process.exitCode === 'number' ? process.exitCode : 0;
}
