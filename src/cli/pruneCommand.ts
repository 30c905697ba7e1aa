import type { CommandModule } from 'yargs';
import { prune, parseDuration } from '../repo/prune.js';
import { openRepo, output, type Args } from './context.js';
import { humanBytes, shortId, table } from './output.js';

interface PruneArgs {
  'keep-last'?: number;
  'keep-best'?: number;
  metric?: string;
  mode?: 'min' | 'max';
  'keep-every-steps'?: number;
  'keep-within'?: string;
  'dry-run'?: boolean;
  gc?: boolean;
}

export const pruneCommand: CommandModule<object, Args<PruneArgs>> = {
  command: 'prune',
  describe: 'drop the data of commits no retention rule keeps (history stays, marked pruned); heads and tags are always kept',
  builder: (y) =>
    y
      .option('keep-last', { type: 'number', describe: 'keep the N newest commits of each branch' })
      .option('keep-best', { type: 'number', describe: 'keep the K best commits of each branch by --metric' })
      .option('metric', { type: 'string', describe: 'metric for --keep-best' })
      .option('mode', { type: 'string', choices: ['min', 'max'], describe: 'min: lower is better (default for names ending in loss/error)' })
      .option('keep-every-steps', { type: 'number', describe: 'keep the first commit of every S training steps' })
      .option('keep-within', { type: 'string', describe: 'keep commits younger than this (7d, 12h, 1w3d)' })
      .option('dry-run', { alias: 'n', type: 'boolean', describe: 'say what would be pruned and freed, change nothing' })
      .option('gc', { type: 'boolean', default: true, describe: 'free the data now (--no-gc: only mark, free at the next ckpt gc)' }) as never,
  handler: async (argv) => {
    const out = output(argv);
    const repo = await openRepo(argv);
    const r = await prune(
      repo,
      {
        keepLast: argv['keep-last'],
        keepBest: argv['keep-best'],
        metric: argv.metric,
        mode: argv.mode,
        keepEverySteps: argv['keep-every-steps'],
        keepWithinMs: argv['keep-within'] === undefined ? undefined : parseDuration(argv['keep-within']),
      },
      { dryRun: argv['dry-run'], noGc: argv.gc === false },
    );
    out.result(r);
    const rows = [
      ...r.kept.map((d) => ['keep', shortId(d.id), d.step === undefined ? '' : String(d.step), `${d.message}  [${d.reasons.join('; ')}]${d.alreadyPruned ? ' (data already pruned)' : ''}`]),
      ...r.pruned.map((d) => [r.dryRun ? 'would prune' : 'prune', shortId(d.id), d.step === undefined ? '' : String(d.step), d.message]),
    ];
    for (const l of table(rows, [2])) out.line(l);
    out.line(
      `${r.kept.length} kept, ${r.pruned.length} ${r.dryRun ? 'would be ' : ''}pruned` + (r.alreadyPruned ? `, ${r.alreadyPruned} pruned before` : ''),
    );
    if (r.gc) out.line(`${r.dryRun ? 'would free' : 'freed'} ${humanBytes(r.gc.bytes.freed)} (${humanBytes(r.gc.bytes.before)} -> ${humanBytes(r.gc.bytes.after)} in packs and index)`);
    else out.line('run `ckpt gc` to free the data');
  },
};
