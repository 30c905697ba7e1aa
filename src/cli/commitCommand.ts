import type { CommandModule } from 'yargs';
import { commitFiles } from '../repo/commit.js';
import { keyValues, openRepo, output, parseNumber, parseParam, type Args } from './context.js';
import { humanBytes, shortId } from './output.js';

interface CommitArgs {
  paths: string[];
  message: string;
  step?: number;
  epoch?: number;
  metric?: string[];
  param?: string[];
  branch?: string;
  format?: string;
  'allow-unsafe-pickle'?: boolean;
  compress?: boolean;
}

export const commitCommand: CommandModule<object, Args<CommitArgs>> = {
  command: 'commit <paths..>',
  describe: 'store checkpoint files (a folder commits as one tree) as a new commit',
  builder: (y) =>
    y
      .positional('paths', { type: 'string', array: true, demandOption: true })
      .option('message', { alias: 'm', type: 'string', demandOption: true, describe: 'commit message' })
      .option('step', { type: 'number', describe: 'training step' })
      .option('epoch', { type: 'number', describe: 'training epoch' })
      .option('metric', { type: 'string', array: true, describe: 'k=v, numeric (repeatable)' })
      .option('param', { type: 'string', array: true, describe: 'k=v hyperparameter (repeatable)' })
      .option('branch', { type: 'string', describe: 'commit onto this branch (created at HEAD if missing)' })
      .option('format', { type: 'string', describe: 'parse as this format instead of detecting it' })
      .option('allow-unsafe-pickle', { type: 'boolean', describe: 'store a pickle that would run code on load' })
      .option('compress', { type: 'boolean', default: true, describe: 'compress chunks (--no-compress to store plain)' }) as never,
  handler: async (argv) => {
    const out = output(argv);
    const repo = await openRepo(argv);
    const progress = out.progress('commit');
    const metrics = keyValues(argv.metric, 'metric', parseNumber);
    const params = keyValues(argv.param, 'param', parseParam);
    try {
      const r = await commitFiles(repo, argv.paths, {
        message: argv.message,
        meta: {
          ...(argv.step !== undefined ? { step: argv.step } : {}),
          ...(argv.epoch !== undefined ? { epoch: argv.epoch } : {}),
          ...(metrics ? { metrics } : {}),
          ...(params ? { params } : {}),
        },
        branch: argv.branch,
        format: argv.format,
        allowUnsafePickle: argv['allow-unsafe-pickle'],
        compress: argv.compress,
        onProgress: (d, t) => progress.update(d, t),
      });
      progress.stop();
      out.result(r);
      const where = r.branch ? r.branch.replace(/^refs\/heads\//, '') : 'detached HEAD';
      out.line(`[${where} ${shortId(r.id)}] ${argv.message.split('\n')[0]}`);
      out.line(
        ` ${r.files.length} file(s), ${humanBytes(r.stats.bytes)}; ${r.stats.newChunks}/${r.stats.chunks} chunks new, ` +
          `${humanBytes(r.stats.newRawBytes)} new data stored as ${humanBytes(r.stats.storedBytes)}`,
      );
    } finally {
      progress.stop();
    }
  },
};
