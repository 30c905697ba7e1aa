/**
 * The `ckpt` command line: yargs commands, one file each. Errors become one clear line on
 * stderr (or a JSON error with --json) and an exit code chosen by the error's code.
 */
import yargs from 'yargs';
import { isCkptError } from '../core/errors.js';
import { ioError } from '../core/ioError.js';
import { setLockWaitReporter } from '../store/lockFile.js';
import { EXIT_CODES, EXIT_INTERNAL } from './exitCodes.js';
import type { CommandModule } from 'yargs';

type Loader = () => Promise<CommandModule<object, never>>;

// Each command's module (and what it imports: Git, HTTP, S3, ...) loads only when that command
// runs, so a quick command like a re-commit of an unchanged file starts fast.
const loaders: Record<string, Loader> = {
  init: async () => (await import('./initCommand.js')).initCommand as never,
  commit: async () => (await import('./commitCommand.js')).commitCommand as never,
  log: async () => (await import('./logCommand.js')).logCommand as never,
  show: async () => (await import('./showCommand.js')).showCommand as never,
  diff: async () => (await import('./diffCommand.js')).diffCommand as never,
  checkout: async () => (await import('./checkoutCommand.js')).checkoutCommand as never,
  status: async () => (await import('./statusCommand.js')).statusCommand as never,
  branch: async () => (await import('./branchCommand.js')).branchCommand as never,
  tag: async () => (await import('./branchCommand.js')).tagCommand as never,
  prune: async () => (await import('./pruneCommand.js')).pruneCommand as never,
  gc: async () => (await import('./gcCommand.js')).gcCommand as never,
  fsck: async () => (await import('./fsckCommand.js')).fsckCommand as never,
  du: async () => (await import('./duCommand.js')).duCommand as never,
  config: async () => (await import('./configCommand.js')).configCommand as never,
  'restore-code': async () => (await import('./restoreCodeCommand.js')).restoreCodeCommand as never,
  remote: async () => (await import('./remoteCommand.js')).remoteCommand as never,
  push: async () => (await import('./pushCommand.js')).pushCommand as never,
  fetch: async () => (await import('./fetchCommand.js')).fetchCommand as never,
  pull: async () => (await import('./pullCommand.js')).pullCommand as never,
  clone: async () => (await import('./cloneCommand.js')).cloneCommand as never,
  serve: async () => (await import('./serveCommand.js')).serveCommand as never,
};

/** The named command alone when argv names one; every command for help and mistakes. */
async function commandsFor(argv: string[]): Promise<CommandModule<object, never>[]> {
  const first = argv.find((a) => !a.startsWith('-'));
  const only = first !== undefined && loaders[first] && !argv.includes('--help') ? [loaders[first]] : Object.values(loaders);
  return Promise.all(only.map((l) => l()));
}

function report(failure: unknown, json: boolean): number {
  const err = ioError(failure); // a file system failure names its path, exit 8, no stack trace
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
  const quiet = argv.includes('-q') || argv.includes('--quiet');
  setLockWaitReporter(quiet ? undefined : (m) => process.stderr.write(`ckpt: ${m}\n`));
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
  for (const c of await commandsFor(argv)) cli.command(c);
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
