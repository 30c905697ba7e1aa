import * as os from 'node:os';
import { promises as fs } from 'node:fs';
import type { CommandModule } from 'yargs';
import { CkptError, UsageError } from '../core/errors.js';
import type { RetentionPolicy } from '../repo/prune.js';
import { Watcher } from '../watch/watcher.js';
import { argPath, openRepo, output, type Args } from './context.js';

interface WatchArgs {
  dir: string;
  branch?: string;
  interval: number;
  settle: number;
  'keep-last'?: number;
  'keep-best'?: number;
  metric?: string;
  once?: boolean;
  'allow-unsafe-pickle'?: boolean;
  nice: number;
}

export const watchCommand: CommandModule<object, Args<WatchArgs>> = {
  command: 'watch <dir>',
  describe: 'commit every checkpoint that appears under DIR, once, when it is complete',
  builder: (y) =>
    y
      .positional('dir', { type: 'string', demandOption: true, describe: 'the folder the training run saves into' })
      .option('branch', { type: 'string', describe: 'commit onto this branch (created at HEAD if missing)' })
      .option('interval', { type: 'number', default: 2, describe: 'seconds between looks' })
      .option('settle', { type: 'number', default: 10, describe: 'seconds a checkpoint with no completion marker must stay unchanged' })
      .option('keep-last', { type: 'number', describe: 'after each commit, keep the data of the N newest commits (prune + gc)' })
      .option('keep-best', { type: 'number', describe: 'after each commit, also keep the K best by --metric' })
      .option('metric', { type: 'string', describe: 'metric for --keep-best' })
      .option('once', { type: 'boolean', describe: 'commit what is complete now and exit' })
      .option('allow-unsafe-pickle', { type: 'boolean', describe: 'store pickles that would run code on load' })
      .option('nice', { type: 'number', default: 10, describe: 'CPU priority, 0-19 (higher yields more to training; 19 can starve the watcher on a full machine)' }) as never,
  handler: async (argv) => {
    const out = output(argv);
    const repo = await openRepo(argv);
    for (const [flag, v] of [['--interval', argv.interval], ['--settle', argv.settle]] as const) {
      if (!Number.isFinite(v) || v < 0) throw new UsageError(`${flag} needs a number of seconds, got ${v}`);
    }
    if (!Number.isInteger(argv.nice) || argv.nice < 0 || argv.nice > 19) throw new UsageError(`--nice needs a whole number from 0 to 19, got ${argv.nice}`);
    const dir = argPath(argv, argv.dir);
    const st = await fs.stat(dir).catch(() => undefined);
    if (!st?.isDirectory()) throw new CkptError('E_NOT_FOUND', `${argv.dir}: no such folder to watch`, { path: argv.dir });
    let retention: RetentionPolicy | undefined;
    if (argv['keep-last'] !== undefined || argv['keep-best'] !== undefined) {
      if (argv['keep-best'] !== undefined && !argv.metric) throw new UsageError('--keep-best needs --metric NAME');
      retention = { keepLast: argv['keep-last'], keepBest: argv['keep-best'], metric: argv.metric };
    }
    // training comes first: the watcher yields the CPU to it
    try {
      os.setPriority(0, Math.max(os.getPriority(0), argv.nice));
    } catch {
      // not allowed here: run at the priority we have
    }
    const watcher = await Watcher.open(repo, {
      dir,
      branch: argv.branch,
      intervalMs: argv.interval * 1000,
      settleMs: argv.settle * 1000,
      retention,
      once: argv.once,
      allowUnsafePickle: argv['allow-unsafe-pickle'],
      log: (l) => out.info(l),
    });
    if (!argv.once) out.info(`ckpt watch: watching ${argv.dir} (${watcher.committedBefore} checkpoint(s) committed before)`);
    const stop = () => watcher.shutdown();
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    try {
      const commits = await watcher.run();
      out.result({ commits });
      if (argv.once) out.line(`${commits.length} checkpoint(s) committed`);
    } finally {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
    }
  },
};
