/**
 * The `ckpt` command line: commands, one file each. A plain command line is parsed by the quick
 * parser (quickArgs.ts), so the run loads only its command's modules; anything else (help, odd
 * forms, mistakes) by yargs (yargsCli.ts), loaded then. Errors become one clear line on stderr
 * (or a JSON error with --json) and an exit code chosen by the error's code.
 */
import { readFileSync } from 'node:fs';
import { isCkptError, UsageError } from '../core/errors.js';
import type { CliRun } from './context.js';
import { ioError } from '../core/ioError.js';
import { setLockWaitReporter } from '../backend/lockFile.js';
import { EXIT_CODES, EXIT_INTERNAL } from './exitCodes.js';
import { processIo, type CliIo } from './output.js';
import { quickArgs, quickCommandName } from './quickArgs.js';
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
  view: async () => (await import('./viewCommand.js')).viewCommand as never,
  merge: async () => (await import('./mergeCommand.js')).mergeCommand as never,
  export: async () => (await import('./exportCommand.js')).exportCommand as never,
  watch: async () => (await import('./watchCommand.js')).watchCommand as never,
};

/** ckpt's own version, from the package.json above this module (dist/src/cli or dist/bundle). */
function packageVersion(): string {
  for (const up of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'ckpt' && pkg.version) return pkg.version;
    } catch {
      // not at this level
    }
  }
  return 'unknown';
}

/** The named command alone when argv names one; every command for help and mistakes. */
async function commandsFor(argv: string[]): Promise<CommandModule<object, never>[]> {
  const first = argv.find((a) => !a.startsWith('-'));
  if (first === undefined && argv.includes('--version') && !argv.includes('--help')) return [];
  const only = first !== undefined && loaders[first] && !argv.includes('--help') ? [loaders[first]] : Object.values(loaders);
  return Promise.all(only.map((l) => l()));
}

/**
 * yargs does not refuse a missing `<required>` positional when the command is registered alone, so
 * each command's handler first checks the ones its command string names.
 */
function demandingPositionals(c: CommandModule<object, never>): CommandModule<object, never> {
  const spec = typeof c.command === 'string' ? c.command : '';
  const name = spec.split(' ')[0];
  const required = [...spec.matchAll(/<([^>.]+)(\.\.)?>/g)].map((m) => m[1]);
  if (required.length === 0 || !c.handler) return c;
  const handler = c.handler;
  return {
    ...c,
    handler: (argv: never) => {
      for (const r of required) {
        const v = (argv as Record<string, unknown>)[r];
        if (v === undefined || (Array.isArray(v) && v.length === 0)) throw new UsageError(`ckpt ${name}: missing <${r}>; see ckpt ${name} --help`);
      }
      return handler(argv);
    },
  };
}

function report(io: CliIo, failure: unknown, json: boolean): number {
  const err = ioError(failure); // a file system failure names its path, exit 8, no stack trace
  if (isCkptError(err)) {
    if (json) io.stdout.write(`${JSON.stringify({ error: err.toJSON() }, null, 2)}\n`);
    io.stderr.write(`ckpt: error: ${err.message}\n`);
    return EXIT_CODES[err.code] ?? EXIT_INTERNAL;
  }
  const e = err as Error;
  if (json) io.stdout.write(`${JSON.stringify({ error: { code: 'E_INTERNAL', message: e?.message ?? String(err) } }, null, 2)}\n`);
  io.stderr.write(`ckpt: internal error: ${e?.stack ?? String(err)}\n`);
  return EXIT_INTERNAL;
}

/**
 * The AWS SDK warns on every S3 run that its later releases will need Node 22: noise for a user
 * of this release. Other warnings still reach Node's own printer.
 */
let sdkWarningMuted = false;
function muteSdkNodeWarning(): void {
  if (sdkWarningMuted) return; // once per process, however many runs
  sdkWarningMuted = true;
  const printers = process.listeners('warning');
  process.removeAllListeners('warning');
  process.on('warning', (w) => {
    if (/AWS SDK for JavaScript/.test(w.message) && /node >=\d+/.test(w.message)) return;
    for (const p of printers) p(w);
  });
}

/**
 * Runs one ckpt command line and returns its exit code. `io` replaces the process's streams,
 * folder and environment (any part left out is the process's own), so the CLI runs in process:
 * nothing is read from or left in process state, such as process.exitCode, between runs.
 */
export async function main(argv: string[], io: Partial<CliIo> = {}): Promise<number> {
  muteSdkNodeWarning();
  const run: CliRun = { io: { ...processIo(), ...io }, exitCode: 0, cleanups: [] };
  const json = argv.includes('--json');
  const quiet = argv.includes('-q') || argv.includes('--quiet');
  setLockWaitReporter(quiet ? undefined : (m) => run.io.stderr.write(`ckpt: ${m}\n`));
  let failure: unknown;
  let usageFailure: string | undefined;
  let printed = '';
  const name = quickCommandName(argv);
  const command = name !== undefined && loaders[name] ? demandingPositionals(await loaders[name]()) : undefined;
  const quick = command && quickArgs(argv, command);
  if (argv.length === 1 && argv[0] === '--version') printed = packageVersion();
  else if (command?.handler && quick) {
    try {
      // the context reaches the command's argv as `ckptRun`, as through yargs' parse context
      await command.handler({ ...quick, ckptRun: run } as never);
    } catch (e) {
      failure = e;
    }
  } else {
    const { runYargs } = await import('./yargsCli.js');
    const commands = (await commandsFor(argv)).map(demandingPositionals);
    const r = await runYargs(argv, packageVersion(), run.io.stdout.columns, commands, { ckptRun: run });
    ({ failure, usageFailure, printed } = r);
  }
  // scratch folders of a store elsewhere, open connections: gone whatever the outcome
  for (const clean of run.cleanups.splice(0).reverse()) {
    try {
      await clean();
    } catch (e) {
      failure ??= e;
    }
  }
  if (printed) run.io.stdout.write(`${printed}\n`);
  if (failure) return report(run.io, failure, json);
  if (usageFailure) {
    run.io.stderr.write(`ckpt: ${usageFailure}\n`);
    return EXIT_CODES.E_USAGE;
  }
  // A command may end with an outcome that is not an error (diff --exit-code found changes).
  return run.exitCode;
}
